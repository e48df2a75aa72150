/* config: JSON settings file with defaults. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

void rp_config_free(rp_config *cfg) {
  if (!cfg) return;
  free(cfg->path);
  free(cfg->timezone);
  free(cfg->default_country);
  for (size_t i = 0; i < cfg->n_placeholders; i++) free(cfg->placeholders[i]);
  free(cfg->placeholders);
  for (size_t i = 0; i < cfg->n_pii_attributes; i++) free(cfg->pii_attributes[i]);
  free(cfg->pii_attributes);
  free(cfg->data_key_file);
  for (size_t i = 0; i < cfg->n_plugin_paths; i++) free(cfg->plugin_paths[i]);
  free(cfg->plugin_paths);
  cJSON_Delete(cfg->plugins);
  free(cfg);
}

const cJSON *rp_config_plugin(const rp_config *cfg, const char *plugin) {
  if (!cfg || !cfg->plugins) return NULL;
  return cJSON_GetObjectItemCaseSensitive(cfg->plugins, plugin);
}

static int str_list(const cJSON *v, const char *key, const char *file, char ***out, size_t *n,
                    rp_err *err) {
  if (!cJSON_IsArray(v))
    return rp_err_set(err, RP_EINVAL, key, "%s: \"%s\" must be an array of strings", file, key);
  int count = cJSON_GetArraySize(v);
  char **list = calloc((size_t)count + 1, sizeof *list);
  if (!list) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  int i = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, v) {
    if (!cJSON_IsString(item)) {
      for (int j = 0; j < i; j++) free(list[j]);
      free(list);
      return rp_err_set(err, RP_EINVAL, key, "%s: \"%s\"[%d] must be a string", file, key, i);
    }
    list[i++] = strdup(item->valuestring);
  }
  *out = list;
  *n = (size_t)i;
  return RP_OK;
}

static int positive(const cJSON *v, const char *key, const char *file, int64_t max,
                    int64_t *out, rp_err *err) {
  if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > (double)max ||
      v->valuedouble != (double)(int64_t)v->valuedouble)
    return rp_err_set(err, RP_EINVAL, key, "%s: \"%s\" must be a whole number from 1 to %lld",
                      file, key, (long long)max);
  *out = (int64_t)v->valuedouble;
  return RP_OK;
}

static int apply(rp_config *c, const cJSON *root, const char *file, rp_err *err) {
  if (!cJSON_IsObject(root))
    return rp_err_set(err, RP_EINVAL, NULL, "%s: the top level must be a JSON object", file);
  const cJSON *v;
  int rc = RP_OK;
  cJSON_ArrayForEach(v, root) {
    const char *k = v->string;
    int64_t n = 0;
    if (strcmp(k, "timezone") == 0 || strcmp(k, "default_country") == 0) {
      if (!cJSON_IsString(v))
        return rp_err_set(err, RP_EINVAL, k, "%s: \"%s\" must be a string", file, k);
      if (strcmp(k, "timezone") == 0) {
        rp_err why;
        if (rp_cron_check_tz(v->valuestring, &why) != RP_OK)
          return rp_err_set(err, RP_EINVAL, k, "%s: %s", file, why.msg);
        free(c->timezone);
        c->timezone = strdup(v->valuestring);
      } else {
        if (strlen(v->valuestring) != 2)
          return rp_err_set(err, RP_EINVAL, k,
                            "%s: \"default_country\" must be an ISO 3166 alpha-2 code such as \"FR\"",
                            file);
        free(c->default_country);
        c->default_country = strdup(v->valuestring);
      }
    } else if (strcmp(k, "placeholders") == 0) {
      rc = str_list(v, k, file, &c->placeholders, &c->n_placeholders, err);
      /* Stored lower-case; identity values are compared case-insensitively. */
      for (size_t i = 0; rc == RP_OK && i < c->n_placeholders; i++)
        for (char *p = c->placeholders[i]; p && *p; p++) *p = (char)tolower((unsigned char)*p);
    } else if (strcmp(k, "pii_attributes") == 0) {
      for (size_t i = 0; i < c->n_pii_attributes; i++) free(c->pii_attributes[i]);
      free(c->pii_attributes);
      c->pii_attributes = NULL;
      c->n_pii_attributes = 0;
      rc = str_list(v, k, file, &c->pii_attributes, &c->n_pii_attributes, err);
      c->pii_attributes_set = 1;
    } else if (strcmp(k, "data_key_file") == 0) {
      if (!cJSON_IsString(v) || !*v->valuestring)
        return rp_err_set(err, RP_EINVAL, k, "%s: \"data_key_file\" must be a path", file);
      free(c->data_key_file);
      c->data_key_file = strdup(v->valuestring);
    } else if (strcmp(k, "plugin_paths") == 0) {
      for (size_t i = 0; i < c->n_plugin_paths; i++) free(c->plugin_paths[i]);
      free(c->plugin_paths);
      c->plugin_paths = NULL;
      c->n_plugin_paths = 0;
      rc = str_list(v, k, file, &c->plugin_paths, &c->n_plugin_paths, err);
    } else if (strcmp(k, "plugin_memory_mb") == 0) {
      if ((rc = positive(v, k, file, 4096, &n, err)) == RP_OK) c->plugin_memory = n << 20;
    } else if (strcmp(k, "plugin_instructions") == 0) {
      rc = positive(v, k, file, INT64_C(1) << 50, &c->plugin_instructions, err);
    } else if (strcmp(k, "job_instructions") == 0) {
      rc = positive(v, k, file, INT64_C(1) << 50, &c->job_instructions, err);
    } else if (strcmp(k, "job_slice_ms") == 0) {
      rc = positive(v, k, file, 1000, &c->job_slice_ms, err);
    } else if (strcmp(k, "bus_batch") == 0) {
      if ((rc = positive(v, k, file, 100000, &n, err)) == RP_OK) c->bus_batch = (int)n;
    } else if (strcmp(k, "suspend_after") == 0) {
      if ((rc = positive(v, k, file, 1000000, &n, err)) == RP_OK) c->suspend_after = (int)n;
    } else if (strcmp(k, "http_max_body_bytes") == 0) {
      rc = positive(v, k, file, INT64_C(1) << 30, &c->http_max_body, err);
    } else if (strcmp(k, "http_max_connections") == 0) {
      if ((rc = positive(v, k, file, 100000, &n, err)) == RP_OK) c->http_max_connections = (int)n;
    } else if (strcmp(k, "http_idle_timeout_ms") == 0) {
      rc = positive(v, k, file, 3600000, &c->http_idle_timeout_ms, err);
    } else if (strcmp(k, "cache_mib") == 0) {
      rc = positive(v, k, file, 65536, &c->cache_mib, err);
    } else if (strcmp(k, "view_cache_mib") == 0) {
      /* 0 is allowed: it turns the view cache off. */
      if (cJSON_IsNumber(v) && v->valuedouble == 0) c->view_cache_mib = 0;
      else rc = positive(v, k, file, 65536, &c->view_cache_mib, err);
    } else if (strcmp(k, "plugins") == 0) {
      if (!cJSON_IsObject(v))
        return rp_err_set(err, RP_EINVAL, k, "%s: \"plugins\" must be an object of plugin name "
                          "to config", file);
      cJSON_Delete(c->plugins);
      c->plugins = cJSON_Duplicate(v, 1);
    } else {
      return rp_err_set(err, RP_EINVAL, k, "%s: unknown key \"%s\"", file, k);
    }
    if (rc) return rc;
  }
  return RP_OK;
}

int rp_config_load(const char *path, rp_config **out, rp_err *err) {
  *out = NULL;
  rp_config *c = calloc(1, sizeof *c);
  if (!c) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  c->timezone = xstrdup("UTC");
  c->plugin_memory = INT64_C(64) << 20;
  c->plugin_instructions = 50000000;
  c->job_instructions = INT64_C(10000000000);
  c->job_slice_ms = 5;
  c->bus_batch = 500;
  c->suspend_after = 25;
  c->http_max_body = INT64_C(1) << 20;
  c->http_max_connections = 4096;
  c->http_idle_timeout_ms = 30000;
  c->cache_mib = 64;
  c->view_cache_mib = 64;
  const char *env_paths = getenv("RAPPORT_PLUGIN_PATH");
  const char *base = env_paths && *env_paths ? env_paths : RP_SOURCE_PLUGIN_DIR;
  /* RAPPORT_PLUGIN_PATH is colon-separated, like PATH. */
  char *copy = strdup(base);
  for (char *save = NULL, *tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
    char **n = realloc(c->plugin_paths, (c->n_plugin_paths + 1) * sizeof *n);
    if (!n) break;
    c->plugin_paths = n;
    c->plugin_paths[c->n_plugin_paths++] = strdup(tok);
  }
  free(copy);
  if (path) {
    c->path = strdup(path);
    FILE *f = fopen(path, "rb");
    if (!f) {
      int e = errno;
      rp_config_free(c);
      return rp_err_set(err, RP_EIO, path, "cannot read config %s: %s", path, strerror(e));
    }
    char *buf = NULL;
    size_t len = 0;
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
      char *nb = realloc(buf, len + got + 1);
      if (!nb) break;
      buf = nb;
      memcpy(buf + len, chunk, got);
      len += got;
    }
    fclose(f);
    if (buf) buf[len] = '\0';
    cJSON *root = buf ? cJSON_ParseWithOpts(buf, NULL, 1) : NULL;
    int rc = RP_OK;
    if (!root) {
      const char *end = cJSON_GetErrorPtr();
      int line = 1;
      for (const char *p = buf; buf && end && p < end && *p; p++) line += *p == '\n';
      rc = rp_err_set(err, RP_EINVAL, path, "%s:%d: malformed JSON", path, line);
    } else {
      rc = apply(c, root, path, err);
    }
    cJSON_Delete(root);
    free(buf);
    if (rc) {
      rp_config_free(c);
      return rc;
    }
  }
  *out = c;
  return RP_OK;
}
