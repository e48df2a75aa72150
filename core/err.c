/* err: formatting of rp_err. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void rp_err_clear(rp_err *e) {
  if (!e) return;
  e->code = RP_OK;
  e->field[0] = '\0';
  e->msg[0] = '\0';
}

int rp_err_set(rp_err *e, int code, const char *field, const char *fmt, ...) {
  if (!e) return code;
  e->code = code;
  snprintf(e->field, sizeof e->field, "%s", field ? field : "");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return code;
}

int rp_err_prefix(rp_err *e, const char *fmt, ...) {
  if (!e) return RP_EINVAL;
  char prefix[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  size_t plen = strlen(prefix), mlen = strlen(e->msg);
  if (plen >= sizeof e->msg) plen = sizeof e->msg - 1;
  if (plen + mlen >= sizeof e->msg) mlen = sizeof e->msg - 1 - plen;
  memmove(e->msg + plen, e->msg, mlen);
  memcpy(e->msg, prefix, plen);
  e->msg[plen + mlen] = '\0';
  return e->code ? e->code : RP_EINVAL;
}

const char *rp_err_name(int code) {
  switch (code) {
  case RP_OK: return "ok";
  case RP_EINVAL: return "invalid";
  case RP_ENOTFOUND: return "not_found";
  case RP_ECONFLICT: return "conflict";
  case RP_EDB: return "database";
  case RP_ENOMEM: return "out_of_memory";
  case RP_EIO: return "io";
  case RP_EDENIED: return "denied";
  case RP_ELIMIT: return "limit";
  case RP_EPLUGIN: return "plugin";
  case RP_ESCHEMA: return "schema";
  default: return "error";
  }
}
