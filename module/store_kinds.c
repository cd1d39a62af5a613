/*
 * store_kinds.c - the registry of record kinds (store_kinds.h): for each
 * sub-database, the layout of its keys and values, the fields of its
 * records with their catalogue rows (catalogue.c), the source its data
 * came through, its purge owner and its check. The store-wide operations
 * (store_json.c, store_dump.c, store_check.c, store_purge.c), the
 * inventory (store_fields.c) and stats (store_stat in store.c) walk this
 * table and keep no list of kinds of their own.
 *
 * Where a new kind is added: a sub-database (enum store_dbi in
 * store_int.h, its name in store.c) and, for records, an enum rec_kind;
 * then its field table below (every field a catalogue row, AC, or
 * picomdm's own, AO) and one entry of store_kinds[]: key and value
 * layout, purge owner, source, check pass; and the check of one entry in
 * store_check.c (checks[], by sub-database). test-admin fails
 * while a kind lacks a codec, a catalogue row or a purge owner. See
 * ARCHITECTURE.md, "The store and its registry".
 */
#include "config.h"

#include <string.h>

#include "picomdm/catalogue.h"
#include "picomdm/message.h"
#include "picomdm/store.h"
#include "store_kinds.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

/* clang-format off */
/* A field of picomdm's own; one with its row of the catalogue. */
#define AO(tg, nm, ty) { .tag = tg, .name = nm, .type = ty, .cat = CAT_OWN, \
    .svc = INV_CHECKIN }
#define AC(tg, nm, ty, m, f) { .tag = tg, .name = nm, .type = ty, \
    .cat = CAT_ROW, .svc = INV_CHECKIN, .message = m, .field = f }
/* One with its row and how the inventory shows it: the message shown for
 * a row of every message ("*"), the fields of when it was received (the
 * second when the first is 0), AF_KEY. */
#define ACI(tg, nm, ty, m, f, shown, at, at_or, fl) { .tag = tg, \
    .name = nm, .type = ty, .cat = CAT_ROW, .svc = INV_CHECKIN, \
    .message = m, .field = f, .inv_message = shown, .at_tag = at, \
    .at_or_tag = at_or, .flags = fl }
/* A MachineInfo field (ADE), received when its record was (tag 8). */
#define AA(tg, nm, ty, f) { .tag = tg, .name = nm, .type = ty, \
    .cat = CAT_ROW, .svc = INV_ADE, .message = "MachineInfo", .field = f, \
    .at_tag = 8 }
/* One that identifies the device (AF_IDENT). */
#define AAI(tg, nm, ty, f) { .tag = tg, .name = nm, .type = ty, \
    .cat = CAT_ROW, .svc = INV_ADE, .message = "MachineInfo", .field = f, \
    .at_tag = 8, .flags = AF_IDENT }
/* An ADE field of Apple's (as text), received at tag at. */
#define AE(tg, nm, m, f, at) { .tag = tg, .name = nm, .type = A_STR, \
    .cat = CAT_ROW, .svc = INV_ADE, .message = m, .field = f, .at_tag = at }
/* A field of Apps and Books (VPP) with its catalogue row: Apple's name
 * of it in that message. */
#define AV(tg, nm, ty, m, f) { .tag = tg, .name = nm, .type = ty, \
    .cat = CAT_ROW, .svc = INV_VPP, .message = m, .field = f }
/* clang-format on */

/* Tags as written by store_device.c and store_queue.c. */
/* Fields with a catalogue row are listed by the inventory in this order. */
static const struct afield device_af[] = {
    ACI(1, "id", A_STR, "*", "UDID", NULL, 0, 0, AF_KEY),
    ACI(2, "serial_number", A_STR, "Authenticate", "SerialNumber", NULL, 20,
	0, 0),
    ACI(3, "udid", A_STR, "*", "UDID", "Authenticate", 20, 0, 0),
    ACI(4, "enrollment_id", A_STR, "*", "EnrollmentID", "Authenticate", 20,
	0, 0),
    ACI(5, "model", A_STR, "Authenticate", "Model", NULL, 20, 0, 0),
    ACI(6, "model_name", A_STR, "Authenticate", "ModelName", NULL, 20, 0, 0),
    ACI(7, "device_name", A_STR, "Authenticate", "DeviceName", NULL, 20, 0,
	0),
    ACI(8, "product_name", A_STR, "Authenticate", "ProductName", NULL, 20,
	0, 0),
    ACI(9, "os_version", A_STR, "Authenticate", "OSVersion", NULL, 20, 0, 0),
    ACI(10, "build_version", A_STR, "Authenticate", "BuildVersion", NULL,
	20, 0, 0),
    ACI(11, "imei", A_STR, "Authenticate", "IMEI", NULL, 20, 0, AF_IDENT),
    ACI(12, "meid", A_STR, "Authenticate", "MEID", NULL, 20, 0, AF_IDENT),
    ACI(13, "topic", A_STR, "Authenticate", "Topic", NULL, 20, 0, 0),
    ACI(14, "identity_cert_sha256", A_HASH, "TLS client certificate",
	"certificate SHA-256", NULL, 20, 0, 0),
    ACI(15, "unlock_token", A_BYTES, "TokenUpdate", "UnlockToken", NULL, 16,
	0, 0),
    AO(16, "unlock_token_at", A_TIME),
    ACI(17, "bootstrap_token", A_BYTES, "SetBootstrapToken",
	"BootstrapToken", NULL, 18, 0, 0),
    AO(18, "bootstrap_token_at", A_TIME),
    AO(19, "created_at", A_TIME),
    AO(20, "authenticated_at", A_TIME),
};

/* The token's fields are received in TokenUpdate (token_updated_at, 15);
 * the topic and user's names are first known at creation (13). */
static const struct afield enroll_af[] = {
    ACI(1, "id", A_STR, "*", "UDID", NULL, 0, 0, AF_KEY),
    AO(2, "device_id", A_STR),
    AO(3, "type", A_ETYPE),
    ACI(7, "topic", A_STR, "TokenUpdate", "Topic", NULL, 15, 13, 0),
    ACI(9, "token", A_BYTES, "TokenUpdate", "Token", NULL, 15, 0, AF_IDENT),
    ACI(8, "push_magic", A_STR, "TokenUpdate", "PushMagic", NULL, 15, 0,
	AF_IDENT),
    AO(10, "enabled", A_BOOL),
    ACI(11, "awaiting_configuration", A_BOOL, "TokenUpdate",
	"AwaitingConfiguration", NULL, 15, 0, 0),
    ACI(4, "user_id", A_STR, "*", "UserID", "TokenUpdate", 15, 13,
	AF_IDENT),
    ACI(5, "user_short_name", A_STR, "*", "UserShortName", "TokenUpdate", 15,
	13, 0),
    ACI(6, "user_long_name", A_STR, "*", "UserLongName", "TokenUpdate", 15,
	13, 0),
    AO(12, "token_update_tally", A_U64),
    AO(13, "created_at", A_TIME),
    AO(14, "last_seen", A_TIME),
    AO(15, "token_updated_at", A_TIME),
    AO(16, "checked_out_at", A_TIME),
    AO(100, "eid", A_U64),
};

static const struct afield msg_af[] = {
    AO(1, "enrollment_id", A_STR),
    AO(2, "kind", A_KIND),
    AO(3, "received_at", A_TIME),
    AO(4, "topic", A_STR),
    AO(5, "raw", A_PLIST),
};

static const struct afield cmd_af[] = {
    AO(1, "command_uuid", A_STR),
    AO(2, "request_type", A_STR),
    AO(3, "raw", A_PLIST),
    AO(4, "created_at", A_TIME),
};

static const struct afield queue_af[] = {
    AO(1, "command_uuid", A_STR),
    AO(2, "status", A_STATUS),
    AO(3, "expires_at", A_TIME),
    AO(4, "enqueued_at", A_TIME),
    AO(5, "not_now_count", A_U64),
    AO(6, "sent_count", A_U64),
    AO(7, "updated_at", A_TIME),
    AO(8, "priority", A_U64),
};

static const struct afield result_af[] = {
    AO(1, "command_uuid", A_STR),
    AO(2, "status", A_STATUS),
    AO(3, "received_at", A_TIME),
    AO(4, "raw", A_PLIST),
    AO(5, "known", A_BOOL),
    AO(6, "well_formed", A_BOOL),
};

static const struct afield cmdq_af[] = {
    AO(1, "status", A_STATUS),
    AO(2, "updated_at", A_TIME),
    AO(3, "result_seq", A_U64),
    AO(4, "queue_seq", A_U64),
    AO(5, "priority", A_U64),
};

/* Tags as written by store_pushcert.c. The key is a secret (its
 * catalogue row says so): never in a dump without --secrets. */
static const struct afield pushcert_af[] = {
    AC(1, "topic", A_STR, "push certificate", "topic"),
    AC(2, "cert_pem", A_STR, "push certificate", "certificate"),
    AC(3, "key_pem", A_STR, "push certificate", "private key"),
    AO(4, "not_after", A_TIME),
    AO(5, "imported_at", A_TIME),
    AO(6, "subject", A_STR),
    AO(7, "sha256", A_STR),
};

/* Tags as written by store_enroll.c: MachineInfo as Setup Assistant
 * sent it (its catalogue rows under ADE), and enrollment tokens, all of
 * whose fields are picomdm's own (the key is the token's SHA-256; the
 * token itself is never stored). */
static const struct afield machineinfo_af[] = {
    AAI(1, "udid", A_STR, "UDID"),
    AAI(2, "serial", A_STR, "SERIAL"),
    AA(3, "product", A_STR, "PRODUCT"),
    AA(4, "version", A_STR, "VERSION"),
    AAI(5, "imei", A_STR, "IMEI"),
    AAI(6, "meid", A_STR, "MEID"),
    AA(7, "language", A_STR, "LANGUAGE"),
    AO(8, "received_at", A_TIME),
};

static const struct afield enrtoken_af[] = {
    AO(1, "note", A_STR),
    AO(2, "created_at", A_TIME),
    AO(3, "expires_at", A_TIME),
    AO(4, "used_at", A_TIME),
    AO(5, "purpose", A_STR),
};

/* Tags as written by store_ade.c: an ADE token (OAuth credentials and
 * the key are secrets, through their catalogue rows), with what /account
 * said (received at account_at, 19) and the sync state; and Apple's
 * device record field by field (synced at 17), with the token it came
 * through (purge --token). */
static const struct afield adetoken_af[] = {
    AO(1, "name", A_STR),
    AE(2, "consumer_key", "server token", "consumer_key", 0),
    AE(3, "consumer_secret", "server token", "consumer_secret", 0),
    AE(4, "access_token", "server token", "access_token", 0),
    AE(5, "access_secret", "server token", "access_secret", 0),
    {.tag = 6, .name = "access_token_expiry", .type = A_TIME,
	.cat = CAT_ROW, .svc = INV_ADE, .message = "server token",
	.field = "access_token_expiry"},
    AE(7, "key_pem", "server token", "private key", 0),
    AE(8, "cert_pem", "server token", "certificate", 0),
    AE(9, "server_name", "account", "server_name", 19),
    AE(10, "server_uuid", "account", "server_uuid", 19),
    AE(11, "admin_id", "account", "admin_id", 19),
    AE(12, "org_name", "account", "org_name", 19),
    AE(13, "org_email", "account", "org_email", 19),
    AE(14, "org_phone", "account", "org_phone", 19),
    AE(15, "org_address", "account", "org_address", 19),
    AE(16, "org_id", "account", "org_id", 19),
    AE(17, "org_type", "account", "org_type", 19),
    AE(18, "org_version", "account", "org_version", 19),
    AO(19, "account_at", A_TIME),
    AO(20, "cursor", A_STR),
    AO(21, "fetched", A_BOOL),
    AO(22, "synced_at", A_TIME),
    AO(23, "default_profile", A_STR),
    AO(24, "created_at", A_TIME),
    AO(25, "imported_at", A_TIME),
};

#define ADEV(tg, f) AE(tg, f, "device record", f, 17)
static const struct afield adedevice_af[] = {
    ADEV(1, "serial_number"),
    ADEV(2, "model"),
    ADEV(3, "description"),
    ADEV(4, "color"),
    ADEV(5, "asset_tag"),
    ADEV(6, "profile_status"),
    ADEV(7, "profile_uuid"),
    ADEV(8, "profile_assign_time"),
    ADEV(9, "profile_push_time"),
    ADEV(10, "device_assigned_date"),
    ADEV(11, "device_assigned_by"),
    ADEV(12, "os"),
    ADEV(13, "device_family"),
    ADEV(14, "op_type"),
    ADEV(15, "op_date"),
    AO(16, "token", A_STR),
    AO(17, "synced_at", A_TIME),
};

/* Tags as written by store_event.c: the webhook outbox, all picomdm's
 * own (the raw message is the one kept in msg or result as well). */
static const struct afield event_af[] = {
    AO(1, "enrollment_id", A_STR),
    AO(2, "topic", A_STR),
    AO(3, "created_at", A_TIME),
    AO(4, "raw", A_PLIST),
    AO(5, "command_uuid", A_STR),
    AO(6, "status", A_STR),
    AO(7, "udid", A_STR),
    AO(8, "msg_enrollment_id", A_STR),
    AO(9, "url_params", A_STR),
    AO(10, "token_update_tally", A_U64),
    AO(11, "attempts", A_U64),
    AO(12, "next_try", A_TIME),
    AO(13, "last_error", A_STR),
    AO(14, "url", A_STR),
    AO(15, "event_id", A_STR),
};

/*
 * Apps and Books (store_vpp.c, picomdm-vpp): a content token, by the name
 * the operator gave it, with what its .vpptoken file and the client
 * configuration say and the sync's cursors; and the assets, assignments
 * and users Apple lists for it, keyed by the token's name first. The
 * sToken is a secret (its catalogue row): never in a dump without
 * --secrets.
 */
static const struct afield vpptoken_af[] = {
    AO(1, "name", A_STR),
    AV(2, "stoken", A_STR, "server token", "sToken"),
    AV(3, "org", A_STR, "server token", "orgName"),
    AV(4, "expires", A_STR, "server token", "expDate"),
    AV(5, "location", A_STR, "client config", "locationName"),
    AV(6, "country", A_STR, "client config", "countryISO2ACode"),
    AV(7, "uid", A_STR, "client config", "uId"),
    AO(8, "imported_at", A_TIME),
    AO(9, "synced_at", A_TIME),
    AO(10, "assignments_version", A_STR),
    AO(11, "users_version", A_STR),
    AO(12, "cursor_list", A_STR),
    AO(13, "cursor_page", A_U64),
    AO(14, "cursor_since", A_STR),
    AO(15, "cursor_version", A_STR),
    AV(16, "mdm_id", A_STR, "client config", "mdmInfo.id"),
    /* Legacy v1's client configuration (picomdm-vpp sync --v1). */
    AV(17, "org_id", A_STR, "client config", "organizationId"),
    AV(18, "org_id_hash", A_STR, "client config", "organizationIdHash"),
    AV(19, "facilitator_member_id", A_STR, "client config",
	"facilitatorMemberId"),
    AV(20, "location_id", A_STR, "client config", "location.locationId"),
    AO(21, "licences_since", A_STR),
    AO(22, "licences_batch", A_STR),
};

static const struct afield vppasset_af[] = {
    AV(1, "adam_id", A_STR, "assets", "adamId"),
    AV(2, "pricing_param", A_STR, "assets", "pricingParam"),
    AV(3, "product_type", A_STR, "assets", "productType"),
    AV(4, "assigned_count", A_U64, "assets", "assignedCount"),
    AV(5, "available_count", A_U64, "assets", "availableCount"),
    AV(6, "retired_count", A_U64, "assets", "retiredCount"),
    AV(7, "total_count", A_U64, "assets", "totalCount"),
    AV(8, "device_assignable", A_BOOL, "assets", "deviceAssignable"),
    AV(9, "revocable", A_BOOL, "assets", "revocable"),
    AO(10, "synced_at", A_TIME),
};

static const struct afield vppassign_af[] = {
    AV(1, "adam_id", A_STR, "assignments", "adamId"),
    AV(2, "pricing_param", A_STR, "assignments", "pricingParam"),
    AV(3, "serial_number", A_STR, "assignments", "serialNumber"),
    AV(4, "client_user_id", A_STR, "assignments", "clientUserId"),
    AO(5, "synced_at", A_TIME),
    /* Legacy v1's licence of the assignment (picomdm-vpp sync --v1). */
    AV(6, "license_id", A_STR, "licences", "licenseId"),
};

static const struct afield vppuser_af[] = {
    AV(1, "client_user_id", A_STR, "users", "clientUserId"),
    AV(2, "email", A_STR, "users", "email"),
    AV(3, "status", A_STR, "users", "status"),
    AV(4, "invite_code", A_STR, "users", "inviteCode"),
    AV(5, "id_hash", A_STR, "users", "idHash"),
    AV(6, "managed_apple_id", A_STR, "users", "managedAppleId"),
    AO(7, "synced_at", A_TIME),
};

/*
 * The App Store metadata of a token's assets (store_vpp_meta.c, picomdm-vpp
 * sync and meta), keyed by the token's name and the adamId like the other
 * VPP kinds, so purge --token and token remove --purge take it with the
 * token; status is "found", or "not found" when the lookup did not know
 * the adamId (so that it is asked again only once synced_at is older
 * than the refresh age, as a found one).
 */
static const struct afield vppmeta_af[] = {
    AV(1, "adam_id", A_STR, "app metadata", "id"),
    AV(2, "name", A_STR, "app metadata", "name"),
    AV(3, "description", A_STR, "app metadata", "description.standard"),
    AV(4, "icon_url", A_STR, "app metadata", "artwork.url"),
    AV(5, "bundle_id", A_STR, "app metadata", "bundleId"),
    AV(6, "copyright", A_STR, "app metadata", "copyright"),
    AV(7, "genres", A_STR, "app metadata", "genreNames"),
    AV(8, "store_url", A_STR, "app metadata", "url"),
    AO(9, "status", A_STR),
    AO(10, "synced_at", A_TIME),
};

/* A write to Apps and Books (store_vpp_event.c, picomdm-vpp assign,
 * unassign, revoke, user create and retire): the eventId Apple answered
 * and what /status said of it, all picomdm's own record of the request;
 * items and failures are JSON text (an array of IDs; one object per
 * failed item with Apple's errorNumber and errorMessage). */
static const struct afield vppevent_af[] = {
    AO(1, "event_id", A_STR),
    AO(2, "type", A_STR),
    AO(3, "item_kind", A_STR),
    AO(4, "items", A_STR),
    AO(5, "adam_id", A_STR),
    AO(6, "pricing_param", A_STR),
    AO(7, "email", A_STR),
    AO(8, "managed_apple_id", A_STR),
    AO(9, "status", A_STR),
    AO(10, "num_requested", A_U64),
    AO(11, "num_completed", A_U64),
    AO(12, "failures", A_STR),
    AO(13, "created_at", A_TIME),
    AO(14, "updated_at", A_TIME),
    AO(15, "completed_at", A_TIME),
    AO(16, "polls", A_U64),
    AO(17, "last_error", A_STR),
};

/* Tags as written by store_push.c: the push outbox (one pending push
 * per enrollment) and each enrollment's push state, all picomdm's own. */
static const struct afield pushq_af[] = {
    AO(1, "queued_at", A_TIME),
    AO(2, "reason", A_STR),
    AO(3, "attempts", A_U64),
    AO(4, "next_try", A_TIME),
    AO(5, "last_result", A_STR),
    AO(6, "last_status", A_U64),
    AO(7, "last_reason", A_STR),
};

static const struct afield pushstate_af[] = {
    AO(1, "last_push_at", A_TIME),
    AO(2, "apns_id", A_STR),
    AO(3, "last_outcome", A_STR),
    AO(4, "last_outcome_at", A_TIME),
    AO(5, "last_status", A_U64),
    AO(6, "last_reason", A_STR),
    AO(7, "token_invalid_at", A_TIME),
    AO(8, "token_invalid_reason", A_STR),
    AO(9, "delivered", A_U64),
};

/* No purge by source for this kind. */
#define NO_SOURCE .src = STORE_SOURCE__MAX, .src_owner = SRC_NONE

/*
 * Check passes: devices, their serial and certificate bindings, then
 * enrollments before their numbers (repair adds missing numbers), numbers
 * before everything keyed by them, results before the queue entries and
 * per-command status that refer to them.
 */
/* clang-format off */
const struct store_kind store_kinds[DBI__MAX] = {
    [DBI_META] = {.dbi = DBI_META, .key = KK_TEXT, .val = KV_U64,
	.owner = OWN_STORE, NO_SOURCE, .check_pass = 0},
    [DBI_DEVICE] = {.dbi = DBI_DEVICE, .key = KK_TEXT, .val = KV_RECORD,
	.rec = REC_DEVICE, .f = device_af, .nf = NF(device_af),
	.plist_svc = INV_CHECKIN, .owner = OWN_DEVICE,
	.src = STORE_SOURCE_TOPIC, .src_tag = TAG_DEVICE_TOPIC,
	.src_owner = SRC_KEY, .check_pass = 1},
    [DBI_ENROLL] = {.dbi = DBI_ENROLL, .key = KK_TEXT, .val = KV_RECORD,
	.rec = REC_ENROLL, .f = enroll_af, .nf = NF(enroll_af),
	.plist_svc = INV_CHECKIN, .owner = OWN_ENROLL,
	.src = STORE_SOURCE_TOPIC, .src_tag = TAG_ENROLL_TOPIC,
	.src_owner = SRC_DEVICE_TAG, .src_owner_tag = TAG_ENROLL_DEVICE,
	.check_pass = 4},
    [DBI_EID] = {.dbi = DBI_EID, .key = KK_U64, .val = KV_TEXT,
	.owner = OWN_EID, NO_SOURCE, .check_pass = 5},
    [DBI_UCHAN] = {.dbi = DBI_UCHAN, .key = KK_U64_U64, .val = KV_TEXT,
	.owner = OWN_EID_PAIR, NO_SOURCE, .check_pass = 6},
    [DBI_SERIAL] = {.dbi = DBI_SERIAL, .key = KK_TEXT, .val = KV_TEXT,
	.owner = OWN_DEVICE_VAL, NO_SOURCE, .check_pass = 2},
    [DBI_CERT] = {.dbi = DBI_CERT, .key = KK_HASH, .val = KV_TEXT,
	.owner = OWN_DEVICE_VAL, NO_SOURCE, .check_pass = 3},
    [DBI_MSG] = {.dbi = DBI_MSG, .key = KK_U64_MSGKIND, .val = KV_RECORD,
	.rec = REC_MSG, .f = msg_af, .nf = NF(msg_af),
	.plist_svc = INV_CHECKIN, .owner = OWN_EID,
	.src = STORE_SOURCE_TOPIC, .src_tag = TAG_MSG_TOPIC,
	.src_owner = SRC_ENROLL_TAG, .src_owner_tag = TAG_MSG_ENROLL,
	.check_pass = 7},
    [DBI_CMD] = {.dbi = DBI_CMD, .key = KK_TEXT, .val = KV_RECORD,
	.rec = REC_CMD, .f = cmd_af, .nf = NF(cmd_af),
	.plist_svc = INV_COMMAND, .owner = OWN_COMMAND, NO_SOURCE,
	.check_pass = 9},
    [DBI_QUEUE] = {.dbi = DBI_QUEUE, .key = KK_U64_PRIO_U64,
	.val = KV_RECORD, .rec = REC_QUEUE, .f = queue_af,
	.nf = NF(queue_af), .plist_svc = INV_COMMAND, .owner = OWN_EID,
	.ref = REF_CMD_FIELD, .ref_tag = TAG_QUEUE_UUID, NO_SOURCE,
	.check_pass = 10},
    [DBI_QPOS] = {.dbi = DBI_QPOS, .key = KK_U64_TEXT, .val = KV_PRIO_SEQ,
	.plist_svc = INV_COMMAND, .owner = OWN_EID, .ref = REF_CMD_KEY,
	NO_SOURCE, .check_pass = 11},
    [DBI_RESULT] = {.dbi = DBI_RESULT, .key = KK_U64_U64, .val = KV_RECORD,
	.rec = REC_RESULT, .f = result_af, .nf = NF(result_af),
	.plist_svc = INV_COMMAND, .owner = OWN_EID_INDEX,
	.ref = REF_CMD_FIELD, .ref_tag = TAG_RESULT_UUID, NO_SOURCE,
	.check_pass = 8},
    [DBI_CMDQ] = {.dbi = DBI_CMDQ, .key = KK_TEXT_U64, .val = KV_RECORD,
	.rec = REC_CMDQ, .f = cmdq_af, .nf = NF(cmdq_af),
	.plist_svc = INV_COMMAND, .owner = OWN_EID_SUFFIX,
	.ref = REF_CMD_KEY, NO_SOURCE, .check_pass = 12},
    [DBI_PUSHCERT] = {.dbi = DBI_PUSHCERT, .key = KK_TEXT,
	.val = KV_RECORD, .rec = REC_PUSHCERT, .f = pushcert_af,
	.nf = NF(pushcert_af), .plist_svc = INV_CHECKIN,
	.owner = OWN_TOPIC, .src = STORE_SOURCE_TOPIC,
	.src_tag = TAG_PUSHCERT_TOPIC, .src_owner = SRC_SELF,
	.check_pass = 13},
    [DBI_MACHINEINFO] = {.dbi = DBI_MACHINEINFO, .key = KK_TEXT,
	.val = KV_RECORD, .rec = REC_MACHINEINFO, .f = machineinfo_af,
	.nf = NF(machineinfo_af), .plist_svc = INV_ADE, .owner = OWN_DEVICE,
	NO_SOURCE, .check_pass = 14},
    [DBI_ENRTOKEN] = {.dbi = DBI_ENRTOKEN, .key = KK_HASH, .val = KV_RECORD,
	.rec = REC_ENRTOKEN, .f = enrtoken_af, .nf = NF(enrtoken_af),
	.plist_svc = INV_CHECKIN, .owner = OWN_EXPIRY, NO_SOURCE,
	.check_pass = 15},
    [DBI_ADETOKEN] = {.dbi = DBI_ADETOKEN, .key = KK_TEXT, .val = KV_RECORD,
	.rec = REC_ADETOKEN, .f = adetoken_af, .nf = NF(adetoken_af),
	.plist_svc = INV_ADE, .owner = OWN_TOKEN,
	.src = STORE_SOURCE_TOKEN, .src_tag = TAG_ADETOKEN_NAME,
	.src_owner = SRC_SELF, .check_pass = 16},
    [DBI_ADEDEVICE] = {.dbi = DBI_ADEDEVICE, .key = KK_TEXT,
	.val = KV_RECORD, .rec = REC_ADEDEVICE, .f = adedevice_af,
	.nf = NF(adedevice_af), .plist_svc = INV_ADE, .owner = OWN_SERIAL,
	.src = STORE_SOURCE_TOKEN, .src_tag = TAG_ADEDEV_TOKEN,
	.src_owner = SRC_SELF, .check_pass = 17},
    [DBI_EVENT] = {.dbi = DBI_EVENT, .key = KK_U64, .val = KV_RECORD,
	.rec = REC_EVENT, .f = event_af, .nf = NF(event_af),
	.plist_svc = INV_CHECKIN, .owner = OWN_ENROLL_TAG,
	.owner_tag = TAG_EVENT_ENROLL, NO_SOURCE, .check_pass = 18},
    [DBI_VPPTOKEN] = {.dbi = DBI_VPPTOKEN, .key = KK_TEXT,
	.val = KV_RECORD, .rec = REC_VPPTOKEN, .f = vpptoken_af,
	.nf = NF(vpptoken_af), .plist_svc = INV_VPP,
	.owner = OWN_VPP_TOKEN, NO_SOURCE, .check_pass = 19},
    [DBI_VPPASSET] = {.dbi = DBI_VPPASSET, .key = KK_STRS,
	.val = KV_RECORD, .rec = REC_VPPASSET, .f = vppasset_af,
	.nf = NF(vppasset_af), .plist_svc = INV_VPP,
	.owner = OWN_VPP_TOKEN, NO_SOURCE, .check_pass = 20},
    [DBI_VPPASSIGN] = {.dbi = DBI_VPPASSIGN, .key = KK_STRS,
	.val = KV_RECORD, .rec = REC_VPPASSIGN, .f = vppassign_af,
	.nf = NF(vppassign_af), .plist_svc = INV_VPP,
	.owner = OWN_VPP_TOKEN, NO_SOURCE, .check_pass = 21},
    [DBI_VPPUSER] = {.dbi = DBI_VPPUSER, .key = KK_STRS,
	.val = KV_RECORD, .rec = REC_VPPUSER, .f = vppuser_af,
	.nf = NF(vppuser_af), .plist_svc = INV_VPP,
	.owner = OWN_VPP_TOKEN, NO_SOURCE, .check_pass = 22},
    [DBI_PUSHQ] = {.dbi = DBI_PUSHQ, .key = KK_U64, .val = KV_RECORD,
	.rec = REC_PUSHQ, .f = pushq_af, .nf = NF(pushq_af),
	.owner = OWN_EID, .plist_svc = INV_CHECKIN, NO_SOURCE,
	.check_pass = 23},
    [DBI_PUSHSTATE] = {.dbi = DBI_PUSHSTATE, .key = KK_U64,
	.val = KV_RECORD, .rec = REC_PUSHSTATE, .f = pushstate_af,
	.nf = NF(pushstate_af), .owner = OWN_EID, .plist_svc = INV_CHECKIN,
	NO_SOURCE, .check_pass = 24},
    [DBI_VPPMETA] = {.dbi = DBI_VPPMETA, .key = KK_STRS,
	.val = KV_RECORD, .rec = REC_VPPMETA, .f = vppmeta_af,
	.nf = NF(vppmeta_af), .plist_svc = INV_VPP,
	.owner = OWN_VPP_TOKEN, NO_SOURCE, .check_pass = 25},
    [DBI_VPPEVENT] = {.dbi = DBI_VPPEVENT, .key = KK_STRS,
	.val = KV_RECORD, .rec = REC_VPPEVENT, .f = vppevent_af,
	.nf = NF(vppevent_af), .plist_svc = INV_VPP,
	.owner = OWN_VPP_TOKEN, NO_SOURCE, .check_pass = 26},
    [DBI_RESULTIX] = {.dbi = DBI_RESULTIX, .key = KK_U64_U64,
	.val = KV_TEXT, .owner = OWN_EID, NO_SOURCE, .check_pass = 27},
};
/* clang-format on */

/* See store_kinds.h. */
const struct store_kind *
store_kind_of_rec(enum rec_kind k)
{
	size_t i;

	for (i = 0; i < DBI__MAX; i++)
		if (store_kinds[i].val == KV_RECORD && store_kinds[i].rec == k)
			return &store_kinds[i];
	return NULL;
}

/* See store_kinds.h. */
const char *
store_kind_name(const struct store_kind *k)
{
	return store_dbi_names[k->dbi];
}

/* See store_kinds.h. */
int
store_kind_by_name(const char *name)
{
	int i;

	for (i = 0; i < DBI__MAX; i++)
		if (strcmp(store_kind_name(&store_kinds[i]), name) == 0)
			return (int)store_kinds[i].dbi;
	return -1;
}

/* See store_kinds.h. */
int
afield_secret(const struct afield *f)
{
	const struct inv_row *r;

	if (f->cat != CAT_ROW)
		return 0;
	r = inventory_find(f->svc, f->message, f->field);
	return r != NULL && r->secret;
}
