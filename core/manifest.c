/* manifest: plugin.json parsing and validation. */
#include "manifest.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "clock.h"
#include "cron.h"

int rp_manifest_valid_name(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 32 || !islower((unsigned char)name[0])) return 0;
  for (size_t i = 0; i < n; i++)
    if (!(islower((unsigned char)name[i]) || isdigit((unsigned char)name[i]) || name[i] == '_'))
      return 0;
  return strcmp(name, "core") != 0 && strcmp(name, "operator") != 0 &&
         strncmp(name, "sqlite", 6) != 0;
}

int rp_pattern_match(const char *pattern, const char *type) {
  if (strcmp(pattern, "*") == 0) return 1;
  size_t n = strlen(pattern);
  if (n >= 2 && pattern[n - 1] == '*' && pattern[n - 2] == '.')
    return strncmp(pattern, type, n - 1) == 0 && type[n - 1] != '\0';
  return strcmp(pattern, type) == 0;
}

static int valid_pattern(const char *p) {
  size_t n = strlen(p);
  if (n == 0 || n > 128) return 0;
  if (strcmp(p, "*") == 0) return 1;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c == '*') {
      if (i != n - 1 || i == 0 || p[i - 1] != '.') return 0;
    } else if (!(isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-' || c == ':')) {
      return 0;
    }
  }
  return 1;
}

static int valid_handler(const char *h) {
  size_t n = strlen(h);
  if (n == 0 || n > 64 || !(isalpha((unsigned char)h[0]) || h[0] == '_')) return 0;
  for (size_t i = 0; i < n; i++)
    if (!(isalnum((unsigned char)h[i]) || h[i] == '_')) return 0;
  return 1;
}

void rp_manifest_free(rp_manifest *m) {
  if (!m) return;
  free(m->file);
  free(m->name);
  free(m->version);
  free(m->description);
  for (size_t i = 0; i < m->n_subs; i++) {
    free(m->subs[i].pattern);
    free(m->subs[i].handler);
  }
  free(m->subs);
  for (size_t i = 0; i < m->n_jobs; i++) {
    free(m->jobs[i].name);
    free(m->jobs[i].kind);
    free(m->jobs[i].spec);
    free(m->jobs[i].handler);
    free(m->jobs[i].missed);
  }
  free(m->jobs);
  for (size_t i = 0; i < m->n_routes; i++) {
    free(m->routes[i].method);
    free(m->routes[i].path);
    free(m->routes[i].handler);
  }
  free(m->routes);
  for (size_t i = 0; i < m->n_commands; i++) {
    free(m->commands[i].name);
    free(m->commands[i].handler);
    free(m->commands[i].description);
    free(m->commands[i].usage);
  }
  free(m->commands);
  cJSON_Delete(m->config);
  free(m);
}

static char *read_all(const char *path, rp_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    rp_err_set(err, errno == ENOENT ? RP_ENOTFOUND : RP_EIO, path, "%s: %s", path,
               strerror(errno));
    return NULL;
  }
  char *buf = NULL;
  size_t len = 0;
  char chunk[4096];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (len + got > (1u << 20)) {
      free(buf);
      fclose(f);
      rp_err_set(err, RP_EINVAL, path, "%s: larger than 1 MiB", path);
      return NULL;
    }
    char *n = realloc(buf, len + got + 1);
    if (!n) {
      free(buf);
      fclose(f);
      rp_err_set(err, RP_ENOMEM, path, "out of memory");
      return NULL;
    }
    buf = n;
    memcpy(buf + len, chunk, got);
    len += got;
  }
  fclose(f);
  if (!buf) buf = calloc(1, 1);
  else buf[len] = '\0';
  return buf;
}

/* Fetches a string member; required or optional. */
static int get_string(const cJSON *obj, const char *key, int required, const char *file,
                      const char *path, char **out, rp_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!v) {
    if (!required) return RP_OK;
    return rp_err_set(err, RP_EINVAL, key, "%s: %s%s: required", file, path, key);
  }
  if (!cJSON_IsString(v) || !v->valuestring[0])
    return rp_err_set(err, RP_EINVAL, key, "%s: %s%s: must be a non-empty string", file, path,
                      key);
  *out = strdup(v->valuestring);
  return *out ? RP_OK : rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
}

static int check_keys(const cJSON *obj, const char *const *allowed, const char *file,
                      const char *path, rp_err *err) {
  const cJSON *c;
  cJSON_ArrayForEach(c, obj) {
    int ok = 0;
    for (int i = 0; allowed[i]; i++)
      if (strcmp(allowed[i], c->string) == 0) ok = 1;
    if (!ok)
      return rp_err_set(err, RP_EINVAL, c->string, "%s: %s%s: unknown field", file, path,
                        c->string);
  }
  return RP_OK;
}

static int parse(rp_manifest *m, const cJSON *root, const char *file, rp_err *err) {
  static const char *const top[] = {"name",          "version", "api",    "description",
                                    "permissions",   "subscriptions", "jobs", "config",
                                    "limits",        "start",   "routes", "commands", NULL};
  if (!cJSON_IsObject(root))
    return rp_err_set(err, RP_EINVAL, NULL, "%s: the top level must be a JSON object", file);
  int rc;
  if ((rc = check_keys(root, top, file, "", err))) return rc;
  if ((rc = get_string(root, "name", 1, file, "", &m->name, err))) return rc;
  if (!rp_manifest_valid_name(m->name))
    return rp_err_set(err, RP_EINVAL, "name",
                      "%s: name: \"%s\" must match [a-z][a-z0-9_]{0,31} and not be reserved "
                      "(core, operator, sqlite*)", file, m->name);
  if ((rc = get_string(root, "version", 1, file, "", &m->version, err))) return rc;
  {
    int a, b, c, n = 0;
    if (sscanf(m->version, "%d.%d.%d%n", &a, &b, &c, &n) != 3 || a < 0 || b < 0 || c < 0 ||
        (m->version[n] != '\0' && m->version[n] != '-' && m->version[n] != '+'))
      return rp_err_set(err, RP_EINVAL, "version",
                        "%s: version: \"%s\" is not a semantic version such as \"1.2.0\"", file,
                        m->version);
  }
  char *api = NULL;
  if ((rc = get_string(root, "api", 1, file, "", &api, err))) return rc;
  int n = 0;
  m->api_minor = 0;
  if (sscanf(api, "%d%n", &m->api_major, &n) != 1 ||
      (api[n] == '.' && sscanf(api + n, ".%d", &m->api_minor) != 1)) {
    rc = rp_err_set(err, RP_EINVAL, "api",
                    "%s: api: \"%s\" must be the host API version the plugin needs, e.g. \"1\" "
                    "or \"1.0\"", file, api);
  } else if (m->api_major != RP_API_MAJOR || m->api_minor > RP_API_MINOR) {
    rc = rp_err_set(err, RP_EINVAL, "api",
                    "%s: api: the plugin needs host API %d.%d; this rapport provides %d.%d",
                    file, m->api_major, m->api_minor, RP_API_MAJOR, RP_API_MINOR);
  }
  free(api);
  if (rc) return rc;
  if ((rc = get_string(root, "description", 0, file, "", &m->description, err))) return rc;

  const cJSON *perms = cJSON_GetObjectItemCaseSensitive(root, "permissions");
  if (perms) {
    if (!cJSON_IsArray(perms))
      return rp_err_set(err, RP_EINVAL, "permissions",
                        "%s: permissions: must be an array of permission names", file);
    int i = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, perms) {
      uint32_t bit = cJSON_IsString(p) ? rp_perm_parse(p->valuestring) : 0;
      if (!bit) {
        char known[256] = "";
        for (int k = 0; rp_perm_names[k]; k++) {
          strncat(known, rp_perm_names[k], sizeof known - strlen(known) - 3);
          if (rp_perm_names[k + 1]) strncat(known, ", ", sizeof known - strlen(known) - 1);
        }
        return rp_err_set(err, RP_EINVAL, "permissions",
                          "%s: permissions[%d]: unknown permission %s%s%s (known: %s)", file, i,
                          cJSON_IsString(p) ? "\"" : "",
                          cJSON_IsString(p) ? p->valuestring : "(not a string)",
                          cJSON_IsString(p) ? "\"" : "", known);
      }
      m->perms |= bit;
      i++;
    }
  }

  const cJSON *subs = cJSON_GetObjectItemCaseSensitive(root, "subscriptions");
  if (subs) {
    if (!cJSON_IsArray(subs))
      return rp_err_set(err, RP_EINVAL, "subscriptions",
                        "%s: subscriptions: must be an array of {\"event\", \"handler\"}", file);
    m->subs = calloc((size_t)cJSON_GetArraySize(subs) + 1, sizeof *m->subs);
    if (!m->subs) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    const cJSON *s;
    cJSON_ArrayForEach(s, subs) {
      char path[64];
      snprintf(path, sizeof path, "subscriptions[%zu].", m->n_subs);
      static const char *const keys[] = {"event", "handler", NULL};
      if (!cJSON_IsObject(s))
        return rp_err_set(err, RP_EINVAL, "subscriptions", "%s: %s: must be an object", file,
                          path);
      rp_subscription *sub = &m->subs[m->n_subs++];
      if ((rc = check_keys(s, keys, file, path, err))) return rc;
      if ((rc = get_string(s, "event", 1, file, path, &sub->pattern, err))) return rc;
      if ((rc = get_string(s, "handler", 1, file, path, &sub->handler, err))) return rc;
      if (!valid_pattern(sub->pattern))
        return rp_err_set(err, RP_EINVAL, "event",
                          "%s: %sevent: \"%s\" must be an event type, \"prefix.*\" or \"*\"",
                          file, path, sub->pattern);
      if (!valid_handler(sub->handler))
        return rp_err_set(err, RP_EINVAL, "handler",
                          "%s: %shandler: \"%s\" must be a Lua identifier", file, path,
                          sub->handler);
    }
  }

  const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(root, "jobs");
  if (jobs) {
    if (!cJSON_IsArray(jobs))
      return rp_err_set(err, RP_EINVAL, "jobs", "%s: jobs: must be an array", file);
    m->jobs = calloc((size_t)cJSON_GetArraySize(jobs) + 1, sizeof *m->jobs);
    if (!m->jobs) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    const cJSON *j;
    cJSON_ArrayForEach(j, jobs) {
      char path[64];
      snprintf(path, sizeof path, "jobs[%zu].", m->n_jobs);
      static const char *const keys[] = {"name", "cron", "every", "at", "handler", "missed", NULL};
      if (!cJSON_IsObject(j))
        return rp_err_set(err, RP_EINVAL, "jobs", "%s: %s: must be an object", file, path);
      rp_manifest_job *job = &m->jobs[m->n_jobs++];
      if ((rc = check_keys(j, keys, file, path, err))) return rc;
      if ((rc = get_string(j, "name", 1, file, path, &job->name, err))) return rc;
      if (!valid_handler(job->name))
        return rp_err_set(err, RP_EINVAL, "name", "%s: %sname: \"%s\" must be an identifier",
                          file, path, job->name);
      for (size_t k = 0; k + 1 < m->n_jobs; k++)
        if (strcmp(m->jobs[k].name, job->name) == 0)
          return rp_err_set(err, RP_EINVAL, "name", "%s: %sname: \"%s\" is used twice", file,
                            path, job->name);
      if ((rc = get_string(j, "handler", 0, file, path, &job->handler, err))) return rc;
      if (!job->handler && !(job->handler = strdup(job->name)))
        return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
      if (!valid_handler(job->handler))
        return rp_err_set(err, RP_EINVAL, "handler",
                          "%s: %shandler: \"%s\" must be a Lua identifier", file, path,
                          job->handler);
      int kinds = 0;
      const char *kind_names[] = {"cron", "every", "at"};
      for (int k = 0; k < 3; k++)
        if (cJSON_GetObjectItemCaseSensitive(j, kind_names[k])) kinds++;
      if (kinds != 1)
        return rp_err_set(err, RP_EINVAL, "jobs",
                          "%s: %s: give exactly one of \"cron\", \"every\" or \"at\"", file, path);
      for (int k = 0; k < 3; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, kind_names[k]);
        if (!v) continue;
        if (!cJSON_IsString(v))
          return rp_err_set(err, RP_EINVAL, kind_names[k], "%s: %s%s: must be a string", file,
                            path, kind_names[k]);
        job->kind = strdup(kind_names[k]);
        char spec[64];
        int64_t ms;
        if (k == 0) {
          rp_cron c;
          rp_err why;
          if (rp_cron_parse(v->valuestring, &c, &why) != RP_OK)
            return rp_err_set(err, RP_EINVAL, "cron", "%s: %scron: %s", file, path, why.msg);
          job->spec = strdup(v->valuestring);
        } else if (k == 1) {
          if (rp_clock_parse_duration(v->valuestring, &ms) != 0)
            return rp_err_set(err, RP_EINVAL, "every",
                              "%s: %severy: \"%s\" is not a duration such as \"15m\", \"1h\", "
                              "\"1d\"", file, path, v->valuestring);
          snprintf(spec, sizeof spec, "%lld", (long long)ms);
          job->spec = strdup(spec);
        } else {
          if (rp_clock_parse(v->valuestring, &ms) != 0)
            return rp_err_set(err, RP_EINVAL, "at",
                              "%s: %sat: \"%s\" is not an ISO 8601 time", file, path,
                              v->valuestring);
          snprintf(spec, sizeof spec, "%lld", (long long)ms);
          job->spec = strdup(spec);
        }
      }
      const cJSON *missed = cJSON_GetObjectItemCaseSensitive(j, "missed");
      const char *mv = "run_once";
      if (missed) {
        if (!cJSON_IsString(missed) || (strcmp(missed->valuestring, "run_once") != 0 &&
                                        strcmp(missed->valuestring, "skip") != 0))
          return rp_err_set(err, RP_EINVAL, "missed",
                            "%s: %smissed: must be \"run_once\" or \"skip\"", file, path);
        mv = missed->valuestring;
      }
      job->missed = strdup(mv);
      if (!job->kind || !job->spec || !job->missed)
        return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    }
  }

  const cJSON *routes = cJSON_GetObjectItemCaseSensitive(root, "routes");
  if (routes) {
    if (!cJSON_IsArray(routes))
      return rp_err_set(err, RP_EINVAL, "routes",
                        "%s: routes: must be an array of {\"method\", \"path\", \"handler\"}",
                        file);
    m->routes = calloc((size_t)cJSON_GetArraySize(routes) + 1, sizeof *m->routes);
    if (!m->routes) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    const cJSON *r;
    cJSON_ArrayForEach(r, routes) {
      char path[64];
      snprintf(path, sizeof path, "routes[%zu].", m->n_routes);
      static const char *const keys[] = {"method", "path", "handler", "public", NULL};
      if (!cJSON_IsObject(r))
        return rp_err_set(err, RP_EINVAL, "routes", "%s: %s: must be an object", file, path);
      rp_manifest_route *route = &m->routes[m->n_routes++];
      if ((rc = check_keys(r, keys, file, path, err))) return rc;
      if ((rc = get_string(r, "method", 1, file, path, &route->method, err))) return rc;
      if ((rc = get_string(r, "path", 1, file, path, &route->path, err))) return rc;
      if ((rc = get_string(r, "handler", 1, file, path, &route->handler, err))) return rc;
      static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};
      int known = 0;
      for (int k = 0; methods[k]; k++) known |= strcmp(methods[k], route->method) == 0;
      if (!known)
        return rp_err_set(err, RP_EINVAL, "method",
                          "%s: %smethod: \"%s\" must be GET, POST, PUT, PATCH or DELETE", file,
                          path, route->method);
      size_t pl = strlen(route->path);
      int ok = pl >= 2 && pl <= 64 && route->path[0] == '/';
      for (size_t k = 1; ok && k < pl; k++)
        ok = strchr("abcdefghijklmnopqrstuvwxyz0123456789_-/", route->path[k]) != NULL;
      if (!ok)
        return rp_err_set(err, RP_EINVAL, "path",
                          "%s: %spath: \"%s\" must be '/' and up to 63 of [a-z0-9_/-]", file,
                          path, route->path);
      if (!valid_handler(route->handler))
        return rp_err_set(err, RP_EINVAL, "handler",
                          "%s: %shandler: \"%s\" must be a Lua identifier", file, path,
                          route->handler);
      const cJSON *pub = cJSON_GetObjectItemCaseSensitive(r, "public");
      if (pub && !cJSON_IsBool(pub))
        return rp_err_set(err, RP_EINVAL, "public", "%s: %spublic: must be true or false", file,
                          path);
      route->public_ = cJSON_IsTrue(pub);
    }
  }

  const cJSON *commands = cJSON_GetObjectItemCaseSensitive(root, "commands");
  if (commands) {
    if (!cJSON_IsArray(commands))
      return rp_err_set(err, RP_EINVAL, "commands",
                        "%s: commands: must be an array of {\"name\", \"handler\"}", file);
    m->commands = calloc((size_t)cJSON_GetArraySize(commands) + 1, sizeof *m->commands);
    if (!m->commands) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    const cJSON *c;
    cJSON_ArrayForEach(c, commands) {
      char path[64];
      snprintf(path, sizeof path, "commands[%zu].", m->n_commands);
      static const char *const keys[] = {"name", "handler", "description", "usage", NULL};
      if (!cJSON_IsObject(c))
        return rp_err_set(err, RP_EINVAL, "commands", "%s: %s: must be an object", file, path);
      rp_manifest_command *cmd = &m->commands[m->n_commands++];
      if ((rc = check_keys(c, keys, file, path, err))) return rc;
      if ((rc = get_string(c, "name", 1, file, path, &cmd->name, err))) return rc;
      if ((rc = get_string(c, "handler", 1, file, path, &cmd->handler, err))) return rc;
      if ((rc = get_string(c, "description", 0, file, path, &cmd->description, err))) return rc;
      if ((rc = get_string(c, "usage", 0, file, path, &cmd->usage, err))) return rc;
      size_t nl = strlen(cmd->name);
      int ok = nl <= 32 && cmd->name[0] >= 'a' && cmd->name[0] <= 'z';
      for (size_t k = 1; ok && k < nl; k++)
        ok = strchr("abcdefghijklmnopqrstuvwxyz0123456789_-", cmd->name[k]) != NULL;
      if (!ok)
        return rp_err_set(err, RP_EINVAL, "name",
                          "%s: %sname: \"%s\" must match [a-z][a-z0-9_-]{0,31}", file, path,
                          cmd->name);
      for (size_t k = 0; k + 1 < m->n_commands; k++)
        if (strcmp(m->commands[k].name, cmd->name) == 0)
          return rp_err_set(err, RP_EINVAL, "name", "%s: %sname: \"%s\" is declared twice",
                            file, path, cmd->name);
      if (!valid_handler(cmd->handler))
        return rp_err_set(err, RP_EINVAL, "handler",
                          "%s: %shandler: \"%s\" must be a Lua identifier", file, path,
                          cmd->handler);
    }
  }

  const cJSON *config = cJSON_GetObjectItemCaseSensitive(root, "config");
  if (config && !cJSON_IsObject(config))
    return rp_err_set(err, RP_EINVAL, "config", "%s: config: must be an object", file);
  m->config = config ? cJSON_Duplicate(config, 1) : cJSON_CreateObject();

  const cJSON *limits = cJSON_GetObjectItemCaseSensitive(root, "limits");
  if (limits) {
    static const char *const keys[] = {"memory_mb", "instructions", NULL};
    if (!cJSON_IsObject(limits))
      return rp_err_set(err, RP_EINVAL, "limits", "%s: limits: must be an object", file);
    if ((rc = check_keys(limits, keys, file, "limits.", err))) return rc;
    const cJSON *mem = cJSON_GetObjectItemCaseSensitive(limits, "memory_mb");
    if (mem) {
      if (!cJSON_IsNumber(mem) || mem->valuedouble < 1 || mem->valuedouble > 4096)
        return rp_err_set(err, RP_EINVAL, "memory_mb",
                          "%s: limits.memory_mb: must be a number from 1 to 4096", file);
      m->memory = (int64_t)mem->valuedouble << 20;
    }
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(limits, "instructions");
    if (ins) {
      if (!cJSON_IsNumber(ins) || ins->valuedouble < 1000 || ins->valuedouble > 1e15)
        return rp_err_set(err, RP_EINVAL, "instructions",
                          "%s: limits.instructions: must be a number from 1000 to 1e15", file);
      m->instructions = (int64_t)ins->valuedouble;
    }
  }
  const cJSON *start = cJSON_GetObjectItemCaseSensitive(root, "start");
  if (start) {
    if (!cJSON_IsString(start) || (strcmp(start->valuestring, "beginning") != 0 &&
                                   strcmp(start->valuestring, "now") != 0))
      return rp_err_set(err, RP_EINVAL, "start",
                        "%s: start: must be \"now\" (only events after enabling) or "
                        "\"beginning\" (the whole log)", file);
    m->replay = strcmp(start->valuestring, "beginning") == 0;
  }
  return RP_OK;
}

int rp_manifest_load(const char *dir, rp_manifest **out, rp_err *err) {
  *out = NULL;
  char file[4096];
  snprintf(file, sizeof file, "%s/plugin.json", dir);
  char *text = read_all(file, err);
  if (!text) return err ? err->code : RP_EIO;
  cJSON *root = cJSON_ParseWithOpts(text, NULL, 1);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    int line = 1;
    for (const char *p = text; at && p < at && *p; p++) line += *p == '\n';
    free(text);
    return rp_err_set(err, RP_EINVAL, file, "%s:%d: malformed JSON", file, line);
  }
  free(text);
  rp_manifest *m = calloc(1, sizeof *m);
  int rc = m ? RP_OK : rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  if (rc == RP_OK && !(m->file = strdup(file))) rc = rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  if (rc == RP_OK) rc = parse(m, root, file, err);
  cJSON_Delete(root);
  if (rc) {
    rp_manifest_free(m);
    return rc;
  }
  *out = m;
  return RP_OK;
}
