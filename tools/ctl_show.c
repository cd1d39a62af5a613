/*
 * ctl_show.c - picomdmctl devices and show: read-only views of the
 * store. Secrets (push token, PushMagic, UnlockToken, BootstrapToken) are
 * shown as length and SHA-256 only.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ctl.h"
#include "picomdm/message.h"
#include "picomdm/push.h"
#include "picomdm/store.h"
#include "picomdm/store_ade.h"
#include "picomdm/store_enroll.h"
#include "picomdm/store_vpp.h"
#include "picomdm/util.h"

static void
fmt_time(uint64_t us, char *buf, size_t n)
{
	if (us == 0)
		strlcpy(buf, "-", n);
	else
		time_format(us, buf, n);
}

/* A secret as {"length": N, "sha256": hex}: never the value itself. */
json_t *
ctl_json_secret(const void *p, size_t n)
{
	unsigned char h[32];
	char          hex[65];

	if (p == NULL)
		return json_null();
	sha256(p, n, h);
	hex_encode(h, sizeof(h), hex);
	return json_pack("{s:I, s:s}", "length", (json_int_t)n, "sha256", hex);
}

json_t *
ctl_json_time(uint64_t us)
{
	char buf[40];

	if (us == 0)
		return json_null();
	time_format(us, buf, sizeof(buf));
	return json_string(buf);
}

json_t *
ctl_json_str(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* ---- devices ---- */

static int
devices_cb(const struct store_enrollment *e, void *arg)
{
	struct store_txn    *t = arg;
	struct store_device *d = NULL;
	char                 seen[40];

	if (strcmp(e->id, e->device_id ? e->device_id : e->id) == 0)
		(void)store_device_get(t, e->id, &d);
	fmt_time(e->last_seen, seen, sizeof(seen));
	printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e->id,
	    enroll_type_name(e->type),
	    d && d->serial ? d->serial : "-",
	    d && d->model ? d->model : (d && d->product_name ?
	    d->product_name : "-"),
	    d && d->os_version ? d->os_version : "-",
	    e->enabled ? "enabled" : "disabled", seen);
	store_device_free(d);
	return 0;
}

static int
devices_op(struct store_txn *t, void *arg)
{
	(void)arg;
	return store_enrollment_iter(t, NULL, devices_cb, t);
}

/* ---- show ---- */

struct show_ctx {
	const char *arg;
	json_t     *out;
};

static json_t *
enrollment_json(const struct store_enrollment *e)
{
	return json_pack("{s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:b, "
	    "s:b, s:I, s:o, s:o, s:o, s:o}",
	    "id", e->id, "device_id", ctl_json_str(e->device_id),
	    "type", enroll_type_name(e->type),
	    "user_id", ctl_json_str(e->user_id),
	    "user_short_name", ctl_json_str(e->user_short_name),
	    "user_long_name", ctl_json_str(e->user_long_name),
	    "topic", ctl_json_str(e->topic),
	    "push_magic", ctl_json_secret(e->push_magic, e->push_magic ?
	    strlen(e->push_magic) : 0),
	    "token", ctl_json_secret(e->token, e->token_len),
	    "enabled", e->enabled, "awaiting_configuration",
	    e->awaiting_configuration,
	    "token_update_tally", (json_int_t)e->token_update_tally,
	    "created_at", ctl_json_time(e->created_at),
	    "last_seen", ctl_json_time(e->last_seen),
	    "token_updated_at", ctl_json_time(e->token_updated_at),
	    "checked_out_at", ctl_json_time(e->checked_out_at));
}

static json_t *
device_json(const struct store_device *d)
{
	char hex[65];

	if (d->has_cert)
		hex_encode(d->cert_hash, 32, hex);
	return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
	    "s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
	    "id", d->id, "serial_number", ctl_json_str(d->serial),
	    "udid", ctl_json_str(d->udid),
	    "enrollment_id", ctl_json_str(d->enrollment_id),
	    "model", ctl_json_str(d->model), "model_name", ctl_json_str(d->model_name),
	    "device_name", ctl_json_str(d->device_name),
	    "product_name", ctl_json_str(d->product_name),
	    "os_version", ctl_json_str(d->os_version),
	    "build_version", ctl_json_str(d->build_version),
	    "imei", ctl_json_str(d->imei), "meid", ctl_json_str(d->meid),
	    "topic", ctl_json_str(d->topic),
	    "identity_cert_sha256", d->has_cert ? json_string(hex) :
	    json_null(),
	    "unlock_token", ctl_json_secret(d->unlock_token, d->unlock_token_len),
	    "unlock_token_at", ctl_json_time(d->unlock_token_at),
	    "bootstrap_token", ctl_json_secret(d->bootstrap_token,
	    d->bootstrap_token_len),
	    "bootstrap_token_at", ctl_json_time(d->bootstrap_token_at),
	    "created_at", ctl_json_time(d->created_at),
	    "authenticated_at", ctl_json_time(d->authenticated_at));
}

static int
msg_cb(const struct store_msg *m, void *arg)
{
	unsigned char h[32];
	char          hex[65];

	sha256(m->raw, m->raw_len, h);
	hex_encode(h, sizeof(h), hex);
	json_array_append_new(arg, json_pack("{s:s, s:o, s:o, s:I, s:s}",
	    "message", msg_kind_name(m->kind),
	    "received_at", ctl_json_time(m->received_at),
	    "topic", ctl_json_str(m->topic), "length", (json_int_t)m->raw_len,
	    "sha256", hex));
	return 0;
}

static int
queue_cb(const struct store_queue_item *q, void *arg)
{
	json_array_append_new(arg, json_pack("{s:s, s:i, s:s, s:o, s:o, s:I, "
	    "s:I}", "command_uuid", q->uuid, "priority", q->priority,
	    "status", q->status == CMD_STATUS_NOT_NOW ? "NotNow" : "queued",
	    "enqueued_at", ctl_json_time(q->enqueued_at),
	    "expires_at", ctl_json_time(q->expires_at),
	    "sent_count", (json_int_t)q->sent_count,
	    "not_now_count", (json_int_t)q->not_now_count));
	return 0;
}

/* One enrollment with its messages and queue, appended to arr. */
static int
show_enrollment(struct store_txn *t, const char *id, json_t *arr)
{
	struct store_enrollment *e;
	json_t                  *o, *msgs, *queue;
	int                      rc;

	if ((rc = store_enrollment_get(t, id, &e)) != 0)
		return rc;
	o = enrollment_json(e);
	/* Its push state and pending push (include/picomdm/push.h). */
	if (o != NULL)
		json_object_set_new(o, "push", store_push_json(t, e));
	store_enrollment_free(e);
	msgs = json_array();
	queue = json_array();
	if ((rc = store_msg_iter(t, id, msg_cb, msgs)) == 0)
		rc = store_queue_iter(t, id, queue_cb, queue);
	json_object_set_new(o, "messages", msgs);
	json_object_set_new(o, "queue", queue);
	json_array_append_new(arr, o);
	return rc;
}

static int
show_uchan_cb(const char *id, void *arg)
{
	void **a = arg;

	return show_enrollment(a[0], id, a[1]);
}

/* One VPP assignment to the device (store_vpp.h), as the vpp list: the
 * app's name and bundleId from its metadata (null until picomdm-vpp
 * fetched it), assigned_at the time of the sync that listed the
 * assignment (Apple's listing carries no date of its own). */
struct show_vpp {
	struct store_txn *t;
	json_t		 *arr;
};

static int
show_vpp_cb(const char *token, json_t *rec, void *arg)
{
	struct show_vpp *sv = arg;
	json_t		*m = NULL, *o;
	int		 rc;

	rc = store_vpp_meta_get(sv->t, token,
	    json_string_value(json_object_get(rec, "adam_id")), &m);
	if (rc != 0 && rc != STORE_ENOTFOUND && rc != STORE_EINVAL)
		return rc;
	o = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:s}", "adam_id",
	    json_object_get(rec, "adam_id"), "name", json_object_get(m, "name"),
	    "bundle_id", json_object_get(m, "bundle_id"), "pricing_param",
	    json_object_get(rec, "pricing_param"), "assigned_at",
	    json_object_get(rec, "synced_at"), "token", token);
	json_decref(m);
	return o != NULL && json_array_append_new(sv->arr, o) == 0
		   ? 0
		   : STORE_ENOMEM;
}

static int
show_op(struct store_txn *t, void *arg)
{
	struct show_ctx         *c = arg;
	struct store_enrollment *e = NULL;
	struct store_device     *d = NULL;
	struct store_machineinfo *mi = NULL;
	struct store_ade_device *ade = NULL;
	char                    *devid = NULL, *serial = NULL, *aserial = NULL;
	json_t                  *arr;
	void                    *a[2];
	int                      rc;

	/* An enrollment ID (device or user channel), else a serial. */
	rc = store_enrollment_get(t, c->arg, &e);
	if (rc == 0)
		devid = strdup(e->device_id ? e->device_id : e->id);
	else if (rc == STORE_ENOTFOUND)
		rc = store_device_by_serial(t, c->arg, &devid);
	if (rc == STORE_ENOTFOUND &&
	    (rc = store_machineinfo_get(t, c->arg, &mi)) == 0)
		devid = strdup(c->arg); /* known by its MachineInfo only */
	if (rc == STORE_ENOTFOUND &&
	    (rc = store_ade_device_get(t, c->arg, &ade)) == 0)
		devid = strdup(c->arg); /* known by its ADE record only */
	store_ade_device_free(ade);
	ade = NULL;
	store_machineinfo_free(mi);
	mi = NULL;
	store_enrollment_free(e);
	if (rc != 0)
		return rc;
	if (devid == NULL)
		return STORE_ENOMEM;
	c->out = json_object();
	rc = store_device_get(t, devid, &d);
	if (rc == 0) {
		json_object_set_new(c->out, "device", device_json(d));
		if (d->serial != NULL && (serial = strdup(d->serial)) == NULL)
			rc = STORE_ENOMEM;
		store_device_free(d);
	} else if (rc == STORE_ENOTFOUND)
		json_object_set_new(c->out, "device", json_null());
	else
		goto out;
	/* The MachineInfo Setup Assistant sent, as received. */
	rc = store_machineinfo_get(t, devid, &mi);
	if (rc == 0) {
		json_object_set_new(c->out, "machineinfo",
		    json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
			"udid", mi->udid, "serial", ctl_json_str(mi->serial),
			"product", ctl_json_str(mi->product),
			"version", ctl_json_str(mi->version),
			"imei", ctl_json_str(mi->imei),
			"meid", ctl_json_str(mi->meid),
			"language", ctl_json_str(mi->language),
			"received_at", ctl_json_time(mi->received_at)));
		if (serial == NULL && mi->serial != NULL &&
		    (serial = strdup(mi->serial)) == NULL)
			rc = STORE_ENOMEM;
		store_machineinfo_free(mi);
	} else if (rc != STORE_ENOTFOUND)
		goto out;
	/* Apple's ADE record of its serial, with or without enrollment
	 * (the serial it finds is the device's for the vpp list below when
	 * the device record and MachineInfo had none). */
	if ((rc = store_ade_serial_of(t, devid, &aserial)) != 0)
		goto out;
	rc = aserial != NULL ? store_ade_device_get(t, aserial, &ade)
			     : STORE_ENOTFOUND;
	if (serial == NULL) {
		serial = aserial;
		aserial = NULL;
	}
	if (rc == 0) {
		json_object_set_new(c->out, "ade", store_ade_device_json(ade));
		store_ade_device_free(ade);
	} else if (rc == STORE_ENOTFOUND)
		json_object_set_new(c->out, "ade", json_null());
	else
		goto out;
	arr = json_array();
	json_object_set_new(c->out, "enrollments", arr);
	rc = show_enrollment(t, devid, arr);
	if (rc == STORE_ENOTFOUND)
		rc = 0;
	a[0] = t;
	a[1] = arr;
	if (rc == 0)
		rc = store_user_channels(t, devid, show_uchan_cb, a);
	/* The Apps and Books licences assigned to its serial number, by
	 * the last sync of each token (picomdm-vpp sync). */
	if (rc == 0) {
		struct show_vpp sv = {t, json_array()};

		json_object_set_new(c->out, "vpp", sv.arr);
		if (serial != NULL)
			rc = store_vpp_of_serial(t, serial, show_vpp_cb, &sv);
	}
out:
	free(aserial);
	free(serial);
	free(devid);
	return rc;
}

int
ctl_devices(struct ctl *c)
{
	if (c->argc != 1)
		return -1;
	return ctl_exit(store_read(c->store, devices_op, NULL), "devices");
}

int
ctl_show(struct ctl *c)
{
	struct show_ctx sc;
	int             rc;

	if (c->argc != 2)
		return -1;
	sc.arg = c->argv[1];
	sc.out = NULL;
	rc = store_read(c->store, show_op, &sc);
	if (rc == 0) {
		json_dumpf(sc.out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	}
	json_decref(sc.out);
	return ctl_exit(rc, c->argv[1]);
}
