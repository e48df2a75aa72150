/* fault: see fault.h. */
#include "fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void rp_fault_point(const char *name) {
  const char *f = getenv("RAPPORT_FAULT");
  if (f && strcmp(f, name) == 0) {
    fprintf(stderr, "rapport: fault injected at %s\n", name);
    _exit(70);
  }
}
