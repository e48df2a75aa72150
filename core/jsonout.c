/* jsonout: see jsonout.h. */
#include "jsonout.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Whole numbers up to 2^53 in magnitude are exact in a double. */
static const double EXACT = 9007199254740992.0;

/* The decimal text of v into buf (at least 21 bytes); returns its length. */
static size_t int_text(int64_t v, char *buf) {
  char tmp[24];
  size_t n = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  size_t len = 0;
  if (v < 0) buf[len++] = '-';
  while (n) buf[len++] = tmp[--n];
  buf[len] = '\0';
  return len;
}

/* Turns the whole numbers of the tree under j into raw nodes; stops at the
 * first allocation failure (the rest print as cJSON would). Returns 0, or -1
 * when out of memory. */
static int rawify(cJSON *j) {
  for (; j; j = j->next) {
    if (j->child && rawify(j->child)) return -1;
    if (!cJSON_IsNumber(j)) continue;
    double d = j->valuedouble;
    if (!(d >= -EXACT && d <= EXACT) || floor(d) != d || (d == 0 && signbit(d))) continue;
    char buf[24];
    size_t len = int_text((int64_t)d, buf);
    char *text = cJSON_malloc(len + 1);
    if (!text) return -1;
    memcpy(text, buf, len + 1);
    j->type = cJSON_Raw | (j->type & cJSON_StringIsConst);
    j->valuestring = text;
  }
  return 0;
}

int rp_json_parse_raw(cJSON *root) {
  int rc = 0;
  for (cJSON *j = root ? root->child : NULL, *next; j; j = next) {
    next = j->next;
    if (j->child && rp_json_parse_raw(j) != 0) rc = -1;
    if (!cJSON_IsRaw(j)) continue;
    cJSON *value = cJSON_Parse(j->valuestring);
    if (!value) {
      rc = -1;
      continue;
    }
    /* The member's name moves to its new value (replacing by pointer does
     * not carry it). */
    value->string = j->string;
    value->type |= j->type & cJSON_StringIsConst;
    j->string = NULL;
    j->type &= ~cJSON_StringIsConst;
    cJSON_ReplaceItemViaPointer(root, j, value); /* cannot fail: j is root's child */
  }
  return rc;
}

char *rp_json_print(cJSON *root) {
  if (root) {
    cJSON *next = root->next;
    root->next = NULL; /* only root and what is under it */
    rawify(root);
    root->next = next;
  }
  return cJSON_PrintUnformatted(root);
}
