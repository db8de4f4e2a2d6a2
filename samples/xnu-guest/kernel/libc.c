/* The few C library routines a freestanding kernel needs. Written with volatile accesses so the
 * compiler cannot turn them back into calls to themselves. */
#include "guest.h"

void *memcpy(void *d, const void *s, size_t n) {
	volatile uint8_t *dp = d;
	const uint8_t *sp = s;
	while (n--) *dp++ = *sp++;
	return d;
}

void *memmove(void *d, const void *s, size_t n) {
	volatile uint8_t *dp = d;
	const uint8_t *sp = s;
	if (dp < sp) {
		while (n--) *dp++ = *sp++;
	} else {
		while (n--) dp[n] = sp[n];
	}
	return d;
}

void *memset(void *d, int c, size_t n) {
	volatile uint8_t *dp = d;
	while (n--) *dp++ = (uint8_t)c;
	return d;
}

/* Darwin's compilers emit bzero for zeroing loops. */
void bzero(void *d, size_t n) { memset(d, 0, n); }

int memcmp(const void *a, const void *b, size_t n) {
	const uint8_t *x = a, *y = b;
	for (; n; n--, x++, y++)
		if (*x != *y) return *x - *y;
	return 0;
}

size_t strlen(const char *s) {
	size_t n = 0;
	while (s[n]) n++;
	return n;
}

int strcmp(const char *a, const char *b) {
	while (*a && *a == *b) a++, b++;
	return (uint8_t)*a - (uint8_t)*b;
}

int strncmp(const char *a, const char *b, size_t n) {
	for (; n; n--, a++, b++) {
		if (*a != *b) return (uint8_t)*a - (uint8_t)*b;
		if (!*a) return 0;
	}
	return 0;
}
