/*
 * ctl_push.c - picomdmctl push ID...: queue a push for each enrollment,
 * as POST /api/v1/push does; picomdm-notify(8) sends it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "ctl.h"
#include "picomdm/push.h"
#include "picomdm/store.h"

int
ctl_push(struct ctl *c)
{
	enum push_queued *pq;
	json_t		 *o, *st;
	size_t		  n, i, ok = 0;
	int		  rc;

	if (c->argc < 2 || c->argv[1][0] == '-')
		return -1;
	n = (size_t)c->argc - 1;
	if ((pq = calloc(n, sizeof(*pq))) == NULL)
		return ctl_exit(STORE_ENOMEM, "push");
	if ((rc = store_push_request(c->store, c->argv + 1, n, "ctl", pq)) !=
	    0) {
		free(pq);
		return ctl_exit(rc, "push");
	}
	o = json_object();
	st = json_object();
	for (i = 0; i < n; i++) {
		ok += pq[i] == PUSHQ_QUEUED || pq[i] == PUSHQ_PENDING;
		json_object_set_new(st, c->argv[i + 1],
		    json_pack("{s:s}", "push", push_queued_name(pq[i])));
	}
	json_object_set_new(o, "status", st);
	free(pq);
	if ((rc = json_dumpf(o, stdout, JSON_SORT_KEYS | JSON_INDENT(2))) == 0)
		putchar('\n');
	json_decref(o);
	/* 0 when every enrollment has its push pending. */
	return rc != 0 ? 1 : ok == n ? 0 : EXIT_NOTFOUND;
}
