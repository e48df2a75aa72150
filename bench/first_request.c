/* first_request: the footprint workload's probe in scripts/bench. Starts a
 * server, measures the time from its start to the first answered request,
 * lets it idle, then reads its resident memory.
 *
 * usage: first_request PORT PATH IDLE_MS CMD [ARG ...]
 *
 * Runs CMD (which must listen on 127.0.0.1:PORT), connects every
 * millisecond until GET PATH is answered 200 (the response parsed with
 * http_parser), waits IDLE_MS, reads VmRSS and VmHWM from /proc, then stops
 * CMD with SIGTERM. Prints {"startup_ms", "rss_kb", "hwm_kb"} as JSON. */
#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int on_complete(http_parser *p) {
  *(int *)p->data = 1;
  return 0;
}

/* One GET; the status code, or 0 when nothing listens or the answer broke. */
static int get(int port, const char *path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int status = 0;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                     path);
    if (write(fd, req, (size_t)n) == n) {
      http_parser p;
      http_parser_settings s;
      int done = 0;
      http_parser_init(&p, HTTP_RESPONSE);
      http_parser_settings_init(&s);
      s.on_message_complete = on_complete;
      p.data = &done;
      char buf[4096];
      ssize_t got;
      while (!done && (got = read(fd, buf, sizeof buf)) > 0)
        if (http_parser_execute(&p, &s, buf, (size_t)got) != (size_t)got) break;
      if (!done) http_parser_execute(&p, &s, NULL, 0); /* EOF ends a body without length */
      if (done) status = (int)p.status_code;
    }
  }
  close(fd);
  return status;
}

static long proc_kb(pid_t pid, const char *field) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long kb = -1;
  size_t n = strlen(field);
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, field, n) == 0 && line[n] == ':') kb = strtol(line + n + 1, NULL, 10);
  if (f) fclose(f);
  return kb;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: first_request PORT PATH IDLE_MS CMD [ARG ...]\n");
    return 1;
  }
  int port = atoi(argv[1]);
  long idle = atol(argv[3]);
  double t0 = now_ms();
  pid_t pid = fork();
  if (pid < 0) return 2;
  if (pid == 0) {
    execvp(argv[4], argv + 4);
    perror(argv[4]);
    _exit(127);
  }
  int status = 0;
  double t1 = 0;
  while (now_ms() - t0 < 10000) {
    /* Not yet listening (0), or not ready yet (503): try again. */
    if ((status = get(port, argv[2])) == 200) {
      t1 = now_ms();
      break;
    }
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      fprintf(stderr, "first_request: %s exited before answering\n", argv[4]);
      return 2;
    }
    sleep_ms(1);
  }
  if (status != 200) {
    fprintf(stderr, "first_request: GET %s answered %d\n", argv[2], status);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return 2;
  }
  sleep_ms(idle);
  long rss = proc_kb(pid, "VmRSS"), hwm = proc_kb(pid, "VmHWM");
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  printf("{\"startup_ms\": %.1f, \"rss_kb\": %ld, \"hwm_kb\": %ld}\n", t1 - t0, rss, hwm);
  return 0;
}
