/* cli_repl: `rapport repl`, an interactive Lua prompt with the operator API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "operator.h"
#include "runtime.h"

static const char help[] =
    "usage: rapport repl\n"
    "\n"
    "Reads Lua from standard input, line by line, and runs it with the `crm` API\n"
    "and the operator's permissions. An expression prints its value (tables as\n"
    "JSON); an incomplete statement continues on the next line. Ctrl-D quits.\n"
    "Example:  crm.customers.get(crm.customers.find('email', 'ana@example.com'))\n";

int rp_cmd_repl(rp_cli *cli, int argc, char **argv) {
  if (rp_cli_wants_help(argc, argv)) {
    fputs(help, stdout);
    return RP_EXIT_OK;
  }
  if (argc > 1) return rp_cli_usage("repl", "unexpected argument '%s'", argv[1]);
  rp_store *s;
  rp_runtime *rt;
  int code = rp_cli_open_runtime(cli, &s, &rt);
  if (code) return code;
  rp_plugin *op;
  rp_err err;
  rp_err_clear(&err);
  if (rp_host_operator(rp_runtime_host(rt), ".", &op, &err) != RP_OK) {
    rp_cli_close_runtime(s, rt);
    return rp_cli_fail(cli, &err);
  }
  rp_sandbox *sb = rp_plugin_sandbox(op);
  lua_State *L = rp_sandbox_lua(sb);
  int tty = isatty(STDIN_FILENO);
  if (tty) printf("Rapport %s operator REPL on %s. Ctrl-D quits.\n", RP_VERSION, cli->db_path);
  char line[8192];
  char *chunk = NULL;
  size_t len = 0;
  int failures = 0;
  for (;;) {
    if (tty) {
      fputs(chunk ? "..> " : "rapport> ", stdout);
      fflush(stdout);
    }
    if (!fgets(line, sizeof line, stdin)) break;
    size_t n = strlen(line);
    char *grown = realloc(chunk, len + n + 1);
    if (!grown) break;
    chunk = grown;
    memcpy(chunk + len, line, n + 1);
    len += n;
    /* An expression first (so `1 + 1` prints), then a statement. */
    size_t exprlen = len + 8;
    char *expr = malloc(exprlen);
    if (!expr) break;
    snprintf(expr, exprlen, "return %s", chunk);
    int top = lua_gettop(L);
    rp_err_clear(&err);
    int rc = rp_sandbox_load(sb, expr, strlen(expr), "=repl", &err);
    free(expr);
    if (rc) rc = rp_sandbox_load(sb, chunk, len, "=repl", &err);
    if (rc) {
      if (strstr(err.msg, "<eof>")) continue; /* incomplete: read more */
      fprintf(stderr, "%s\n", err.msg);
      failures++;
    } else if (rp_sandbox_call(sb, 0, LUA_MULTRET, 0, "repl", &err) != RP_OK) {
      fprintf(stderr, "%s\n", err.msg);
      failures++;
    } else {
      rp_operator_print(L, lua_gettop(L) - top, stdout);
    }
    lua_settop(L, top);
    free(chunk);
    chunk = NULL;
    len = 0;
  }
  free(chunk);
  if (tty) putchar('\n');
  rp_plugin_free_operator(op);
  rp_cli_close_runtime(s, rt);
  return tty || !failures ? RP_EXIT_OK : RP_EXIT_RUNTIME;
}
