/*
 * api_vpp_install.c - the licence check of an App Store install through
 * the operator API's enqueue (api_data.c): an InstallApplication with an
 * iTunesStoreID (the app's adamId) is queued only when the device of
 * every enrollment it goes to holds an Apps and Books licence of that
 * adamId, that is an assignment to the device's serial number that
 * picomdm-vpp sync stored (include/picomdm/store_vpp.h), of any token or
 * of the one ?vpp_token= names. Otherwise the enqueue is refused whole
 * (409, naming the enrollment, its serial and the adamId) and nothing is
 * queued. The check runs inside the enqueue's own write transaction
 * (command_enqueue_push's check), so a picomdm-vpp sync cannot take the
 * licence away between the check and the enqueue. Installs without an
 * iTunesStoreID (ManifestURL, Identifier) are not checked. See
 * picomdm-api(7) and README.md "Apps and Books".
 */
#include "config.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <plist/plist.h>

#include "api_int.h"
#include "picomdm/command.h"
#include "picomdm/plist.h"
#include "picomdm/store.h"
#include "picomdm/store_vpp.h"

struct api_licence {
	char	     adam_id[32];
	const char  *token; /* NULL: any */
	char *const *ids;
	size_t	     nids;
	/* The first enrollment without a licence, and why. */
	const char *bad_id;
	char	   *bad_serial; /* NULL: the device's serial is not known */
	int	    no_token;	/* the token named does not exist */
};

/* The serial number of an enrollment's device: 0 with *serial (caller
 * frees; NULL when the device record has none), STORE_ENOTFOUND for an
 * unknown enrollment, or a store_err. */
static int
serial_of(struct store_txn *t, const char *id, char **serial)
{
	struct store_enrollment *e = NULL;
	struct store_device	*d = NULL;
	int			 rc;

	*serial = NULL;
	if ((rc = store_enrollment_get(t, id, &e)) != 0)
		return rc;
	rc = store_device_get(t, e->device_id ? e->device_id : e->id, &d);
	store_enrollment_free(e);
	if (rc == STORE_ENOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (d->serial != NULL && (*serial = strdup(d->serial)) == NULL)
		rc = STORE_ENOMEM;
	store_device_free(d);
	return rc;
}

/* See api_int.h. */
int
api_vpp_licence_run(struct store_txn *t, void *arg)
{
	struct api_licence *op = arg;
	json_t		   *tok;
	char		   *serial;
	size_t		    i;
	int		    rc;

	op->bad_id = NULL;
	free(op->bad_serial);
	op->bad_serial = NULL;
	op->no_token = 0;
	if (op->token != NULL) {
		rc = store_vpp_token_get(t, op->token, 0, &tok);
		json_decref(tok);
		if (rc == STORE_ENOTFOUND || rc == STORE_EINVAL) {
			op->no_token = 1;
			return 404;
		}
		if (rc != 0)
			return rc;
	}
	for (i = 0; i < op->nids; i++) {
		if ((rc = serial_of(t, op->ids[i], &serial)) == STORE_ENOTFOUND)
			continue; /* the enqueue says it is unknown */
		if (rc != 0)
			return rc;
		rc = serial == NULL ? 0 :
		    store_vpp_licensed(t, serial, op->adam_id, op->token, NULL,
			0);
		if (rc < 0) {
			free(serial);
			return rc;
		}
		if (rc == 0) {
			op->bad_id = op->ids[i];
			op->bad_serial = serial;
			return 409;
		}
		free(serial);
	}
	return 0;
}

/*
 * The iTunesStoreID of an InstallApplication command as text in out, 1;
 * 0 when the command is not one or has none; -1 when its plist does not
 * parse (it did when it was checked: out of memory); -2 when it is not
 * an adamId: 0 or negative (a negative integer reads back as one of 2^63
 * or more, which no adamId is either).
 */
static int
store_id_of(const struct command *cmd, char *out, size_t n)
{
	plist_t	 root = NULL, c, id;
	uint64_t u = 0;
	int	 r = 0;

	if (strcmp(cmd->request_type, "InstallApplication") != 0)
		return 0;
	if (plist_safe_parse((const char *)cmd->raw, cmd->raw_len, &root) !=
	    PLIST_SAFE_OK)
		return -1;
	c = plist_dict_get_item(root, "Command");
	id = c != NULL && plist_get_node_type(c) == PLIST_DICT
		 ? plist_dict_get_item(c, "iTunesStoreID")
		 : NULL;
	if (id != NULL && plist_get_node_type(id) == PLIST_UINT) {
		plist_get_uint_val(id, &u);
		snprintf(out, n, "%" PRIu64, u);
		r = u == 0 || u > INT64_MAX ? -2 : 1;
	}
	plist_free(root);
	return r;
}

/* See api_int.h. */
int
api_vpp_licence_new(struct api *a, const struct command *cmd,
    char *const *ids, size_t nids, const char *token,
    struct api_licence **out)
{
	struct api_licence *op;
	int		    rc;

	*out = NULL;
	if ((op = calloc(1, sizeof(*op))) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		return -1;
	}
	if ((rc = store_id_of(cmd, op->adam_id, sizeof(op->adam_id))) == 0) {
		free(op);
		if (token == NULL)
			return 0;
		api_fail(a, 400, "bad request", "vpp_token: only for an "
		    "InstallApplication with an iTunesStoreID");
		return -1;
	}
	if (rc == -2) {
		free(op);
		api_fail(a, 400, "invalid command", "iTunesStoreID: want the "
		    "app's adamId, a whole number from 1 to %" PRId64,
		    INT64_MAX);
		return -1;
	}
	if (rc < 0) {
		free(op);
		api_fail(a, 500, "internal error", "out of memory");
		return -1;
	}
	op->token = token;
	op->ids = ids;
	op->nids = nids;
	*out = op;
	return 0;
}

/* See api_int.h. */
void
api_vpp_licence_fail(struct api *a, const struct api_licence *op)
{
	if (op->no_token)
		api_fail(a, 404, "unknown VPP token",
		    "vpp_token: no Apps and Books token %.64s", op->token);
	else if (op->bad_serial == NULL)
		api_fail(a, 409, "no licence",
		    "no licence of adamId %s can be checked: the serial "
		    "number of enrollment %.80s's device is not known; "
		    "nothing was queued",
		    op->adam_id, op->bad_id);
	else
		api_fail(a, 409, "no licence",
		    "serial %.64s holds no Apps and Books licence of adamId "
		    "%s%s%.64s (enrollment %.80s): assign one and sync "
		    "(picomdm-vpp); nothing was queued",
		    op->bad_serial, op->adam_id,
		    op->token != NULL ? " from token " : "",
		    op->token != NULL ? op->token : "", op->bad_id);
}

/* See api_int.h. */
void
api_vpp_licence_free(struct api_licence *op)
{
	if (op == NULL)
		return;
	free(op->bad_serial);
	free(op);
}
