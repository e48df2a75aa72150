/* assets: files compiled into the binary (see cmake/embed.cmake): the Lua spec
 * runner, the plugin scaffold templates, the LuaLS meta preamble. */
#ifndef RP_ASSETS_H
#define RP_ASSETS_H

#include <stddef.h>

typedef struct rp_asset {
  const char *name; /* file name under core/assets/ */
  const char *text; /* NUL-terminated; static storage */
  size_t len;
} rp_asset;

extern const rp_asset rp_assets[];

/* The asset called name, or NULL. Borrowed, static. */
const rp_asset *rp_asset_find(const char *name);

#endif
