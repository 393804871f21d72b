/* main.c - the sdc command line (temporary skeleton). */
#include <stdio.h>
#include "sdc.h"
int main(void) { printf("sdc\n"); return 0; }
