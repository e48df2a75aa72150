/* jsonout: JSON text from cJSON trees, for answers that carry many
 * integers (ids, epoch-millisecond times, money in minor units).
 *
 * cJSON prints a number beyond the range of an int with sprintf("%1.15g")
 * and reads it back with sscanf to check it; for a customer's view with its
 * recent events that was a sixth of the time of a GET. rp_json_print first
 * turns each whole number within 2^53 (all cJSON holds exactly) into a raw
 * node holding its decimal text, which cJSON copies verbatim: the same text,
 * a fraction of the work (and exact to 2^53, where cJSON keeps 15 digits). */
#ifndef RP_JSONOUT_H
#define RP_JSONOUT_H

#include <cjson/cJSON.h>

/* Prints root unformatted, as cJSON_PrintUnformatted does. root is modified
 * (whole numbers become raw nodes with the same text): print it last. The
 * text is the caller's, freed with cJSON_free; NULL when out of memory. */
char *rp_json_print(cJSON *root);

/* Replaces each raw node under root (JSON text kept as stored, such as an
 * event's properties) by the value it holds, for code that reads the values
 * rather than printing them. Returns 0, or -1 when out of memory or when a
 * raw text does not parse (that node is then left as it was). */
int rp_json_parse_raw(cJSON *root);

#endif
