/* vault: see vault.h. */
#define _POSIX_C_SOURCE 200809L
#include "vault.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct rp_vault {
  rp_datakey *keys[RP_VAULT_MAX_KEYS]; /* keys[0] is the current key */
  int n_keys;
  char *path;           /* the key file, NULL for the environment or memory */
  struct stat seen;     /* the file as last read */
  int64_t checked_ns;   /* when the file was last stat'ed (monotonic) */
  char **pii;           /* PII attribute names */
  size_t n_pii;
};

/* Names, addresses and birth dates: what identifies a person on its own or
 * nearly so. An operator declares more (or fewer) with "pii_attributes". */
static const char *const default_pii[] = {
    "name",          "first_name",    "last_name", "middle_name", "full_name",
    "nickname",      "address",       "address1",  "address2",    "address_line1",
    "address_line2", "street",        "birth_date", "birthday",   "date_of_birth",
};

enum { KEY_HEX = 64, FILE_MAX = RP_VAULT_MAX_KEYS * (KEY_HEX + 2) + 64 };

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int from_hex(const char *hex, size_t n, unsigned char key[32]) {
  if (n != KEY_HEX) return -1;
  for (int i = 0; i < 32; i++) {
    int v = 0;
    for (int j = 0; j < 2; j++) {
      char c = hex[2 * i + j];
      int d = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (d < 0) return -1;
      v = v * 16 + d;
    }
    key[i] = (unsigned char)v;
  }
  return 0;
}

static void free_keys(rp_datakey **keys, int n) {
  for (int i = 0; i < n; i++) rp_datakey_free(keys[i]);
}

/* Parses keys separated by sep (',' or '\n'; blank entries and spaces are
 * ignored) into keys[]; where names the source in errors. */
static int parse_ring(const char *text, char sep, const char *where, rp_datakey **keys, int *n,
                      rp_err *err) {
  *n = 0;
  const char *p = text;
  while (*p) {
    const char *end = strchr(p, sep);
    if (!end) end = p + strlen(p);
    const char *a = p, *b = end;
    while (a < b && (*a == ' ' || *a == '\t' || *a == '\r' || *a == '\n')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r' || b[-1] == '\n')) b--;
    if (b > a) {
      unsigned char raw[32];
      if (*n == RP_VAULT_MAX_KEYS) {
        free_keys(keys, *n);
        return rp_err_set(err, RP_EINVAL, where, "%s: more than %d data keys", where,
                          RP_VAULT_MAX_KEYS);
      }
      if (from_hex(a, (size_t)(b - a), raw) != 0) {
        free_keys(keys, *n);
        return rp_err_set(err, RP_EINVAL, where,
                          "%s: key %d is not 64 hex digits (one 32-byte key per %s)", where,
                          *n + 1, sep == ',' ? "comma-separated entry" : "line");
      }
      int rc = rp_datakey_from_bytes(raw, &keys[*n], err);
      OPENSSL_cleanse(raw, sizeof raw);
      if (rc) {
        free_keys(keys, *n);
        return rc;
      }
      (*n)++;
    }
    p = *end ? end + 1 : end;
  }
  if (*n == 0) return rp_err_set(err, RP_EINVAL, where, "%s: no data key in it", where);
  return RP_OK;
}

/* Reads the key file at path into keys[], checking its type and mode. */
static int read_key_file(const char *path, rp_datakey **keys, int *n, struct stat *st,
                         rp_err *err) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW);
  if (fd < 0)
    return rp_err_set(err, errno == ENOENT ? RP_ENOTFOUND : RP_EIO, path,
                      errno == ENOENT ? "no data key: %s does not exist (run `rapport init`, or "
                                        "set RAPPORT_DATA_KEY)"
                                      : "%s: cannot open the data key: %s",
                      path, strerror(errno));
  if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    close(fd);
    return rp_err_set(err, RP_EINVAL, path, "%s: the data key must be a regular file", path);
  }
  if (st->st_mode & (S_IRWXG | S_IRWXO)) {
    close(fd);
    return rp_err_set(err, RP_EINVAL, path,
                      "%s: the data key is readable by others (mode %03o): chmod 600 it", path,
                      (unsigned)(st->st_mode & 0777));
  }
  char buf[FILE_MAX + 1];
  ssize_t got = read(fd, buf, sizeof buf);
  close(fd);
  if (got < 0) return rp_err_set(err, RP_EIO, path, "%s: %s", path, strerror(errno));
  if (got > FILE_MAX)
    return rp_err_set(err, RP_EINVAL, path, "%s: too long for a data key file", path);
  buf[got] = '\0';
  int rc = parse_ring(buf, '\n', path, keys, n, err);
  OPENSSL_cleanse(buf, sizeof buf);
  return rc;
}

/* Writes lines (each a 64-hex-digit key) to path through a temporary file,
 * then renames it over path and syncs the folder. */
static int write_key_file(const char *path, char lines[][KEY_HEX + 1], int n, rp_err *err) {
  size_t len = strlen(path);
  char *tmp = malloc(len + 8);
  if (!tmp) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  snprintf(tmp, len + 8, "%s.new", path);
  unlink(tmp);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
  int ok = fd >= 0;
  for (int i = 0; ok && i < n; i++)
    ok = write(fd, lines[i], KEY_HEX) == KEY_HEX && write(fd, "\n", 1) == 1;
  if (ok) ok = fsync(fd) == 0;
  if (fd >= 0 && close(fd) != 0) ok = 0;
  if (ok) ok = rename(tmp, path) == 0;
  int saved = errno;
  if (!ok) unlink(tmp);
  free(tmp);
  if (!ok)
    return rp_err_set(err, RP_EIO, path, "%s: cannot write the data key: %s", path,
                      strerror(saved));
  char *copy = strdup(path);
  if (copy) {
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
      (void)fsync(dfd);
      close(dfd);
    }
    free(copy);
  }
  return RP_OK;
}

static int new_key_hex(char out[KEY_HEX + 1], rp_err *err) {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1)
    return rp_err_set(err, RP_EIO, NULL, "no randomness available for a data key");
  for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", raw[i]);
  OPENSSL_cleanse(raw, sizeof raw);
  return RP_OK;
}

static rp_vault *vault_new(void) {
  rp_vault *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  v->n_pii = sizeof default_pii / sizeof default_pii[0];
  v->pii = calloc(v->n_pii, sizeof *v->pii);
  for (size_t i = 0; v->pii && i < v->n_pii; i++) v->pii[i] = strdup(default_pii[i]);
  for (size_t i = 0; v->pii && i < v->n_pii; i++)
    if (!v->pii[i]) {
      rp_vault_free(v);
      return NULL;
    }
  if (!v->pii) {
    free(v);
    return NULL;
  }
  return v;
}

int rp_vault_load(const char *path, int create, rp_vault **out, rp_err *err) {
  *out = NULL;
  rp_vault *v = vault_new();
  if (!v) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  const char *env = getenv("RAPPORT_DATA_KEY");
  int rc;
  if (env && *env) {
    rc = parse_ring(env, ',', "RAPPORT_DATA_KEY", v->keys, &v->n_keys, err);
  } else {
    rc = read_key_file(path, v->keys, &v->n_keys, &v->seen, err);
    if (rc == RP_ENOTFOUND && create) {
      char line[1][KEY_HEX + 1];
      int fd;
      rc = new_key_hex(line[0], err);
      /* O_EXCL: two processes racing to create the key agree on one. */
      if (rc == RP_OK && (fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0) {
        int ok = write(fd, line[0], KEY_HEX) == KEY_HEX && write(fd, "\n", 1) == 1 &&
                 fsync(fd) == 0;
        if (close(fd) != 0) ok = 0;
        if (!ok) rc = rp_err_set(err, RP_EIO, path, "%s: cannot write the data key: %s", path,
                                 strerror(errno));
      } else if (rc == RP_OK && errno != EEXIST) {
        rc = rp_err_set(err, RP_EIO, path, "%s: cannot create the data key: %s", path,
                        strerror(errno));
      }
      OPENSSL_cleanse(line, sizeof line);
      if (rc == RP_OK) rc = read_key_file(path, v->keys, &v->n_keys, &v->seen, err);
    }
    if (rc == RP_OK && !(v->path = strdup(path)))
      rc = rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    v->checked_ns = mono_ns();
  }
  if (rc) {
    rp_vault_free(v);
    return rc;
  }
  *out = v;
  return RP_OK;
}

int rp_vault_ephemeral(rp_vault **out, rp_err *err) {
  *out = NULL;
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1)
    return rp_err_set(err, RP_EIO, NULL, "no randomness available for a data key");
  rp_vault *v = vault_new();
  if (!v) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  int rc = rp_datakey_from_bytes(raw, &v->keys[0], err);
  OPENSSL_cleanse(raw, sizeof raw);
  if (rc) {
    rp_vault_free(v);
    return rc;
  }
  v->n_keys = 1;
  *out = v;
  return RP_OK;
}

void rp_vault_free(rp_vault *v) {
  if (!v) return;
  free_keys(v->keys, v->n_keys);
  for (size_t i = 0; v->pii && i < v->n_pii; i++) free(v->pii[i]);
  free(v->pii);
  free(v->path);
  free(v);
}

int rp_vault_from_env(const rp_vault *v) { return v->path == NULL; }

int rp_vault_reload(rp_vault *v, rp_err *err) {
  if (!v->path) return RP_OK;
  v->checked_ns = mono_ns();
  struct stat st;
  if (stat(v->path, &st) != 0) return RP_OK; /* keep the keys in hand */
  if (st.st_ino == v->seen.st_ino && st.st_size == v->seen.st_size &&
      st.st_mtim.tv_sec == v->seen.st_mtim.tv_sec && st.st_mtim.tv_nsec == v->seen.st_mtim.tv_nsec)
    return RP_OK;
  rp_datakey *keys[RP_VAULT_MAX_KEYS];
  int n = 0;
  int rc = read_key_file(v->path, keys, &n, &st, err);
  if (rc) return rc;
  free_keys(v->keys, v->n_keys);
  memcpy(v->keys, keys, sizeof keys);
  v->n_keys = n;
  v->seen = st;
  return RP_OK;
}

/* A file-backed ring looks at its file at most once a second. */
void rp_vault_refresh(rp_vault *v) {
  if (v->path && mono_ns() - v->checked_ns >= 1000000000) rp_vault_reload(v, NULL);
}

int rp_vault_key_count(rp_vault *v) { return v->n_keys; }

void rp_vault_fingerprint(rp_vault *v, char out[17]) { rp_datakey_fingerprint(v->keys[0], out); }

int rp_vault_has_key(rp_vault *v, const char *fp) {
  for (int i = 0; i < v->n_keys; i++) {
    char mine[17];
    rp_datakey_fingerprint(v->keys[i], mine);
    if (strcmp(mine, fp) == 0) return 1;
  }
  return 0;
}

int rp_vault_set_pii(rp_vault *v, char *const *names, size_t n, rp_err *err) {
  char **copy = calloc(n ? n : 1, sizeof *copy);
  if (!copy) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  for (size_t i = 0; i < n; i++)
    if (!(copy[i] = strdup(names[i]))) {
      for (size_t j = 0; j < i; j++) free(copy[j]);
      free(copy);
      return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    }
  for (size_t i = 0; i < v->n_pii; i++) free(v->pii[i]);
  free(v->pii);
  v->pii = copy;
  v->n_pii = n;
  return RP_OK;
}

int rp_vault_pii_attribute(const rp_vault *v, const char *name) {
  if (!v) {
    for (size_t i = 0; i < sizeof default_pii / sizeof default_pii[0]; i++)
      if (strcmp(default_pii[i], name) == 0) return 1;
    return 0;
  }
  for (size_t i = 0; i < v->n_pii; i++)
    if (strcmp(v->pii[i], name) == 0) return 1;
  return 0;
}

int rp_vault_sealed_kind(const char *kind) {
  return strcmp(kind, "email") == 0 || strcmp(kind, "phone") == 0;
}

char *const *rp_vault_pii_names(const rp_vault *v, size_t *n) {
  *n = v->n_pii;
  return v->pii;
}

int rp_vault_seal(rp_vault *v, const char *context, const void *plain, size_t n,
                  unsigned char **sealed, size_t *sealed_len, rp_err *err) {
  return rp_datakey_seal(v->keys[0], context, plain, n, sealed, sealed_len, err);
}

static rp_datakey *key_of(rp_vault *v, uint32_t id) {
  for (int i = 0; i < v->n_keys; i++)
    if (rp_datakey_id(v->keys[i]) == id) return v->keys[i];
  return NULL;
}

int rp_vault_open(rp_vault *v, const char *context, const unsigned char *sealed,
                  size_t sealed_len, char **plain, size_t *n, rp_err *err) {
  *plain = NULL;
  uint32_t id;
  if (rp_datakey_sealed_id(sealed, sealed_len, &id) != 0)
    return rp_err_set(err, RP_EINVAL, context, "%s: not a sealed value", context);
  rp_datakey *k = key_of(v, id);
  if (!k && v->path) { /* sealed by a key this process has not seen yet */
    int rc = rp_vault_reload(v, err);
    if (rc) return rc;
    k = key_of(v, id);
  }
  if (!k)
    return rp_err_set(err, RP_EINVAL, context,
                      "%s: sealed by data key %08x, which the key ring does not hold", context,
                      (unsigned)id);
  int rc = rp_datakey_open(k, context, sealed, sealed_len, plain, n, err);
  if (rc) rp_err_prefix(err, "%s: ", context);
  return rc;
}

int rp_vault_is_current(rp_vault *v, const unsigned char *sealed, size_t sealed_len) {
  uint32_t id;
  return rp_datakey_sealed_id(sealed, sealed_len, &id) == 0 && id == rp_datakey_id(v->keys[0]);
}

int rp_vault_blinds(rp_vault *v, const char *context, const char *value,
                    char out[RP_VAULT_MAX_KEYS][RP_BLIND_HEX + 1]) {
  for (int i = 0; i < v->n_keys; i++) rp_datakey_blind(v->keys[i], context, value, out[i]);
  return v->n_keys;
}

/* Reads the key lines of the file at path (validated by parsing them). */
static int read_lines(const char *path, char lines[][KEY_HEX + 1], int *n, rp_err *err) {
  rp_datakey *keys[RP_VAULT_MAX_KEYS];
  struct stat st;
  int rc = read_key_file(path, keys, n, &st, err);
  if (rc) return rc;
  free_keys(keys, *n);
  FILE *f = fopen(path, "r");
  if (!f) return rp_err_set(err, RP_EIO, path, "%s: %s", path, strerror(errno));
  char buf[FILE_MAX + 2];
  int k = 0;
  while (k < *n && fgets(buf, sizeof buf, f)) {
    char *a = buf;
    while (*a == ' ' || *a == '\t') a++;
    if (strlen(a) < KEY_HEX) continue;
    memcpy(lines[k], a, KEY_HEX);
    lines[k++][KEY_HEX] = '\0';
  }
  OPENSSL_cleanse(buf, sizeof buf);
  fclose(f);
  *n = k;
  return RP_OK;
}

int rp_vault_file_rotate(const char *path, rp_err *err) {
  char lines[RP_VAULT_MAX_KEYS + 1][KEY_HEX + 1];
  int n = 0;
  int rc = read_lines(path, lines + 1, &n, err);
  if (rc == RP_OK && n == RP_VAULT_MAX_KEYS)
    rc = rp_err_set(err, RP_EINVAL, path,
                    "%s: already holds %d keys: finish the rotation in progress first", path, n);
  if (rc == RP_OK) rc = new_key_hex(lines[0], err);
  if (rc == RP_OK) rc = write_key_file(path, lines, n + 1, err);
  OPENSSL_cleanse(lines, sizeof lines);
  return rc;
}

int rp_vault_file_retire(const char *path, rp_err *err) {
  char lines[RP_VAULT_MAX_KEYS][KEY_HEX + 1];
  int n = 0;
  int rc = read_lines(path, lines, &n, err);
  if (rc == RP_OK && n > 1) rc = write_key_file(path, lines, 1, err);
  OPENSSL_cleanse(lines, sizeof lines);
  return rc;
}
