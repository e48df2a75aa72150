/* sha256: see sha256.h. */
#include "sha256.h"

#include <string.h>

const EVP_MD *rp_sha256_md(void) {
  static EVP_MD *fetched;
  if (!fetched) fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
  return fetched ? fetched : EVP_sha256();
}

int rp_sha256(const void *data, size_t len, unsigned char out[32]) {
  unsigned int n = 0;
  if (EVP_Digest(data, len, out, &n, rp_sha256_md(), NULL) == 1 && n == 32) return 0;
  memset(out, 0, 32);
  return -1;
}
