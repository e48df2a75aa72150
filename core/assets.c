/* assets: lookup in the generated asset table. */
#include "assets.h"

#include <string.h>

const rp_asset *rp_asset_find(const char *name) {
  for (const rp_asset *a = rp_assets; a->name; a++)
    if (strcmp(a->name, name) == 0) return a;
  return NULL;
}
