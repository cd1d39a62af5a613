/*
 * regress.h - fail-fast checks for the unit test programs. Each program
 * tests one area; its exit status is the verdict. CHECK prints file:line
 * and the expression that failed.
 */
#ifndef PICOMDM_REGRESS_H
#define PICOMDM_REGRESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int regress_checks;

#define CHECK(expr)                                                           \
	do {                                                                  \
		regress_checks++;                                             \
		if (!(expr)) {                                                \
			fprintf(stderr, "%s:%d: check failed: %s\n",          \
			    __FILE__, __LINE__, #expr);                       \
			exit(1);                                              \
		}                                                             \
	} while (0)

#define CHECK_EQ(a, b)                                                        \
	do {                                                                  \
		long long regress_a = (long long)(a);                         \
		long long regress_b = (long long)(b);                         \
		regress_checks++;                                             \
		if (regress_a != regress_b) {                                 \
			fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", \
			    __FILE__, __LINE__, #a, regress_a, regress_b);    \
			exit(1);                                              \
		}                                                             \
	} while (0)

#define CHECK_STR(a, b)                                                       \
	do {                                                                  \
		const char *regress_s = (a);                                  \
		regress_checks++;                                             \
		if (regress_s == NULL || strcmp(regress_s, (b)) != 0) {       \
			fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", \
			    __FILE__, __LINE__, #a,                           \
			    regress_s ? regress_s : "(null)", (b));           \
			exit(1);                                              \
		}                                                             \
	} while (0)

#define REGRESS_DONE()                                                        \
	do {                                                                  \
		printf("%s: %d checks passed\n", __FILE__, regress_checks);   \
		return 0;                                                     \
	} while (0)

#endif
