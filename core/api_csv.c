/* api_csv: crm.csv, CSV text for plugins (exports, lists to import) through
 * libcsv, so no plugin writes its own quoting or parser.
 *
 * encode quotes a cell only when it must (a comma, quote, CR or LF, or
 * spaces at either end) and ends records with CRLF (RFC 4180). decode is
 * strict: a quote inside an unquoted cell or an unterminated quoted cell is
 * an error naming the line. */
#include <csv.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

/* ---- crm.csv.encode ----------------------------------------------------------- */

/* The text being built, owned by a userdata on the Lua stack so that an
 * error raised half-way (a bad cell, the memory cap) frees it with the
 * userdata. (A luaL_Buffer cannot be used: the rows and cells are pushed
 * between its operations.) */
typedef struct csv_text {
  char *data;
  size_t len, cap;
} csv_text;

static int text_gc(lua_State *L) {
  csv_text *t = lua_touserdata(L, 1);
  free(t->data);
  t->data = NULL;
  return 0;
}

static void text_add(lua_State *L, csv_text *t, const char *v, size_t n, int quote) {
  size_t need = t->len + (quote ? 2 * n + 2 : n) + 1;
  if (need > t->cap) {
    size_t cap = t->cap ? t->cap : 256;
    while (cap < need) cap *= 2;
    char *d = realloc(t->data, cap);
    if (!d) luaL_error(L, "crm.csv.encode: out of memory");
    t->data = d;
    t->cap = cap;
  }
  if (quote) t->len += csv_write(t->data + t->len, t->cap - t->len, v, n);
  else {
    memcpy(t->data + t->len, v, n);
    t->len += n;
  }
}

static int needs_quotes(const char *v, size_t n) {
  if (n && (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t')) return 1;
  for (size_t i = 0; i < n; i++)
    if (v[i] == ',' || v[i] == '"' || v[i] == '\r' || v[i] == '\n') return 1;
  return 0;
}

/* Adds one cell (the value at idx: string, number, boolean or nil). */
static void add_cell(lua_State *L, csv_text *t, int idx, lua_Integer row, lua_Integer col) {
  size_t n = 0;
  const char *v;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: return;
  case LUA_TBOOLEAN: v = lua_toboolean(L, idx) ? "true" : "false"; n = strlen(v); break;
  case LUA_TNUMBER:
  case LUA_TSTRING: v = lua_tolstring(L, idx, &n); break; /* a number: converted in place */
  default:
    luaL_error(L, "crm.csv.encode: row %I column %I is a %s (strings, numbers, booleans or nil)",
               row, col, luaL_typename(L, idx));
    return;
  }
  if (memchr(v, 0, n)) luaL_error(L, "crm.csv.encode: row %I column %I holds a NUL byte", row, col);
  text_add(L, t, v, n, needs_quotes(v, n));
}

/* crm.csv.encode(rows [, columns]) -> text: rows is an array of arrays of
 * cells; with columns (an array of names), rows are tables keyed by those
 * names, and a header line comes first. */
static int csv_encode(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int named = !lua_isnoneornil(L, 2);
  if (named) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_Integer ncols = named ? luaL_len(L, 2) : 0;
  if (named && ncols < 1) return luaL_error(L, "crm.csv.encode: columns must name at least one column");
  for (lua_Integer i = 1; i <= ncols; i++) {
    if (lua_geti(L, 2, i) != LUA_TSTRING)
      return luaL_error(L, "crm.csv.encode: column %I must be a string", i);
    lua_pop(L, 1);
  }
  csv_text *t = lua_newuserdatauv(L, sizeof *t, 0);
  memset(t, 0, sizeof *t);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, text_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  if (named) {
    for (lua_Integer i = 1; i <= ncols; i++) {
      if (i > 1) text_add(L, t, ",", 1, 0);
      lua_geti(L, 2, i);
      add_cell(L, t, -1, 0, i);
      lua_pop(L, 1);
    }
    text_add(L, t, "\r\n", 2, 0);
  }
  lua_Integer nrows = luaL_len(L, 1);
  for (lua_Integer r = 1; r <= nrows; r++) {
    if (lua_geti(L, 1, r) != LUA_TTABLE)
      return luaL_error(L, "crm.csv.encode: row %I must be a table", r);
    int row = lua_gettop(L);
    lua_Integer n = named ? ncols : luaL_len(L, row);
    for (lua_Integer i = 1; i <= n; i++) {
      if (i > 1) text_add(L, t, ",", 1, 0);
      if (named) {
        lua_geti(L, 2, i);
        lua_gettable(L, row);
      } else {
        lua_geti(L, row, i);
      }
      add_cell(L, t, -1, r, i);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    text_add(L, t, "\r\n", 2, 0);
  }
  lua_pushlstring(L, t->data ? t->data : "", t->len);
  return 1; /* the userdata frees the C text when collected */
}

/* ---- crm.csv.decode ----------------------------------------------------------- */

/* What the libcsv callbacks build: rows of cells in C, pushed to Lua once
 * parsing is over (the callbacks must not raise). */
typedef struct csv_cell {
  char *text;
  size_t len;
} csv_cell;

typedef struct csv_rows {
  csv_cell *cells;   /* every cell, row after row */
  size_t n, cap;
  size_t *row_end;   /* cells index past each row's last cell */
  size_t nrows, rows_cap;
  int nomem;
} csv_rows;

static void on_cell(void *s, size_t len, void *data) {
  csv_rows *r = data;
  if (r->nomem) return;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    csv_cell *c = realloc(r->cells, cap * sizeof *c);
    if (!c) {
      r->nomem = 1;
      return;
    }
    r->cells = c;
    r->cap = cap;
  }
  char *t = malloc(len + 1);
  if (!t) {
    r->nomem = 1;
    return;
  }
  if (len) memcpy(t, s, len);
  t[len] = 0;
  r->cells[r->n++] = (csv_cell){t, len};
}

static void on_record(int c, void *data) {
  (void)c;
  csv_rows *r = data;
  if (r->nomem) return;
  if (r->nrows == r->rows_cap) {
    size_t cap = r->rows_cap ? r->rows_cap * 2 : 64;
    size_t *e = realloc(r->row_end, cap * sizeof *e);
    if (!e) {
      r->nomem = 1;
      return;
    }
    r->row_end = e;
    r->rows_cap = cap;
  }
  r->row_end[r->nrows++] = r->n;
}

static void rows_free(csv_rows *r) {
  for (size_t i = 0; i < r->n; i++) free(r->cells[i].text);
  free(r->cells);
  free(r->row_end);
  memset(r, 0, sizeof *r);
}

static int rows_gc(lua_State *L) {
  rows_free(lua_touserdata(L, 1));
  return 0;
}

/* The line (1-based) holding byte off of text. */
static size_t line_of(const char *text, size_t off) {
  size_t line = 1;
  for (size_t i = 0; i < off; i++)
    if (text[i] == '\n') line++;
  return line;
}

/* crm.csv.decode(text [, {header = true}]) -> rows: an array of arrays of
 * strings; with header, the first line names the columns and each row is a
 * table keyed by them (empty cells absent). Errors name the line. */
static int csv_decode(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  int header = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "header");
    header = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  /* A UTF-8 byte order mark (spreadsheets write one) is not data. */
  size_t skip = len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
  /* The parsed cells belong to a userdata: pushing them may raise (the
   * memory cap), and its __gc frees them then as well as on success. */
  csv_rows *rp = lua_newuserdatauv(L, sizeof *rp, 0);
  memset(rp, 0, sizeof *rp);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, rows_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  struct csv_parser p;
  if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_EMPTY_IS_NULL) != 0)
    return luaL_error(L, "crm.csv.decode: out of memory");
  size_t done = csv_parse(&p, text + skip, len - skip, on_cell, on_record, rp);
  int failed = done != len - skip, open_quote = 0;
  if (!failed && csv_fini(&p, on_cell, on_record, rp) != 0) {
    failed = open_quote = 1;
    done = len - skip;
  }
  int why = csv_error(&p);
  csv_free(&p);
  if (rp->nomem) return luaL_error(L, "crm.csv.decode: out of memory");
  if (open_quote) {
    /* Quotes toggle the quoted state (a doubled one toggles twice): the
     * last one that opened it is where the cell starts. */
    size_t opened = skip;
    int in = 0;
    for (size_t i = skip; i < len; i++)
      if (text[i] == '"' && (in = !in)) opened = i;
    return luaL_error(L, "crm.csv.decode: line %d: a quoted cell is never closed",
                      (int)line_of(text, opened));
  }
  if (failed)
    return luaL_error(L, "crm.csv.decode: line %d: %s", (int)line_of(text, skip + done),
                      why == CSV_EPARSE ? "a quote inside an unquoted cell" : csv_strerror(why));
  const csv_rows r = *rp;
  lua_createtable(L, (int)(r.nrows - (header && r.nrows ? 1 : 0)), 0);
  int out = lua_gettop(L);
  size_t first = 0;
  size_t ncols = 0;
  if (header && r.nrows) {
    ncols = r.row_end[0];
    first = 1;
  }
  size_t start = first ? r.row_end[0] : 0;
  lua_Integer k = 0;
  for (size_t row = first; row < r.nrows; row++) {
    size_t end = r.row_end[row];
    lua_createtable(L, header ? 0 : (int)(end - start), header ? (int)ncols : 0);
    for (size_t i = start; i < end; i++) {
      if (header) {
        size_t col = i - start;
        if (col >= ncols || !r.cells[i].len) continue; /* extra or empty cells */
        if (!r.cells[col].len) continue;               /* a column without a name */
        lua_pushlstring(L, r.cells[i].text, r.cells[i].len);
        lua_setfield(L, -2, r.cells[col].text);
      } else {
        lua_pushlstring(L, r.cells[i].text, r.cells[i].len);
        lua_rawseti(L, -2, (lua_Integer)(i - start + 1));
      }
    }
    lua_rawseti(L, out, ++k);
    start = end;
  }
  return 1; /* the userdata frees the cells when collected */
}

void rp_api_push_csv(lua_State *L) {
  static const luaL_Reg fns[] = {{"encode", csv_encode}, {"decode", csv_decode}, {NULL, NULL}};
  luaL_newlib(L, fns);
}
