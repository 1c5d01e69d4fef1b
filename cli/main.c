#include <stdio.h>
int main(void) { puts("maqet placeholder"); return 0; }
