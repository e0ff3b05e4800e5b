#include <stdio.h>
int main(void) { puts("truv-sandbox: not built yet"); return 1; }
