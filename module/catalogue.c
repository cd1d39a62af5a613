/*
 * catalogue.c - the catalogue of the data picomdm holds about devices,
 * one row per field of each Apple service (include/picomdm/catalogue.h;
 * ARCHITECTURE.md, "The data catalogue"). It depends on nothing of the
 * store: the store's registry (store_kinds.c) points each record field
 * at its row here, and the per-device inventory (inventory.c) labels
 * what the store holds with it.
 *
 * Sources for the keys: Apple's device-management schema (mdm/checkin and
 * mdm/commands YAML, as generated into schema_tables.c), the ADE device
 * record of the device-services API and the Apps and Books (VPP) API.
 * The check-in rows are kept in step with schema_checkin by test-admin.
 *
 * Secrets are the values that let someone act for a device or an
 * organisation: push token and PushMagic (wake the device), UnlockToken
 * (clears the passcode), BootstrapToken, activation-lock bypass codes,
 * passcodes and PINs in commands, and the service tokens of ADE and VPP.
 *
 * A new kind of record (store_kinds.c) links each field that comes from
 * Apple to its row here; a field with no row yet gets one in this table
 * first (test-admin fails on a link to a row that does not exist), with
 * secret set when the value lets someone act for a device.
 */
#include "config.h"

#include <stddef.h>
#include <string.h>

#include "picomdm/catalogue.h"

/* One-line initialisers for the rows: service, kept as, secret. */
/* clang-format off */
#define CI(m, f, p) { INV_CHECKIN, m, f, p, 0, INV_KEPT_FIELD }
#define CR(m, f, p) { INV_CHECKIN, m, f, p, 0, INV_KEPT_RAW }
#define CS(m, f, p) { INV_CHECKIN, m, f, p, 1, INV_KEPT_FIELD }
#define MF(m, f, p) { INV_COMMAND, m, f, p, 0, INV_KEPT_FIELD }
#define MR(m, f, p) { INV_COMMAND, m, f, p, 0, INV_KEPT_RAW }
#define MS(m, f, p) { INV_COMMAND, m, f, p, 1, INV_KEPT_RAW }
#define AD(m, f, p) { INV_ADE, m, f, p, 0, INV_KEPT_FIELD }
#define AS(m, f, p) { INV_ADE, m, f, p, 1, INV_KEPT_FIELD }
#define AM(f, p) { INV_ADE, "MachineInfo", f, p, 0, INV_KEPT_FIELD }
#define VP(m, f, p) { INV_VPP, m, f, p, 0, INV_KEPT_PLANNED }
#define VS(m, f, p) { INV_VPP, m, f, p, 1, INV_KEPT_PLANNED }
#define VK(m, f, p) { INV_VPP, m, f, p, 0, INV_KEPT_FIELD }
#define VSK(m, f, p) { INV_VPP, m, f, p, 1, INV_KEPT_FIELD }
/* clang-format on */

/* The purposes shared by many rows. */
#define P_ID	  "identifies the enrollment; key of its records"
#define P_MSGTYPE "selects how the check-in is handled"
#define P_TOPIC                                                               \
	"APNs topic of the push certificate; addresses pushes and names the " \
	"service the data arrived through (purge --topic)"
#define P_USER	   "identifies the user channel; shown to the operator"
#define P_AWAITING "device waits for DeviceConfigured (ADE Setup Assistant)"
#define P_RAWONLY  "not used; kept in the raw message as received"

const struct inv_row inventory_catalogue[] = {
    /* ---- APNs / check-in: every message ---- */
    CI("*", "MessageType", P_MSGTYPE),
    CI("*", "UDID", P_ID),
    CI("*", "EnrollmentID", P_ID " (User Enrollment, no UDID)"),
    CI("*", "UserID", P_USER),
    CI("*", "UserShortName", P_USER " (Shared iPad: the user part of its ID)"),
    CI("*", "UserLongName", P_USER),
    CI("*", "EnrollmentUserID", P_USER " (User Enrollment)"),

    /* Authenticate */
    CI("Authenticate", "Topic", P_TOPIC),
    CI("Authenticate", "SerialNumber",
	"finds the device by serial; ties it to ADE and VPP records"),
    CI("Authenticate", "Model", "shown to the operator (inventory)"),
    CI("Authenticate", "ModelName", "shown to the operator (inventory)"),
    CI("Authenticate", "ProductName", "shown to the operator (inventory)"),
    CI("Authenticate", "DeviceName", "shown to the operator (inventory)"),
    CI("Authenticate", "OSVersion",
	"shown to the operator; decides which commands apply"),
    CI("Authenticate", "BuildVersion", "shown to the operator (inventory)"),
    CI("Authenticate", "IMEI", "shown to the operator (cellular devices)"),
    CI("Authenticate", "MEID", "shown to the operator (cellular devices)"),

    /* The push certificate of a topic, imported by the operator
     * (picomdmctl pushcert import, PUT /api/v1/pushcert): not from a
     * device, but the credential every push to the topic's devices is
     * sent with; its key lets anyone push as this server. */
    CI("push certificate", "topic", P_TOPIC),
    CI("push certificate", "certificate",
	"TLS client certificate for APNs; its not-after is warned about"),
    CS("push certificate", "private key",
	"TLS client key for APNs: lets anyone push to the topic's devices"),

    /* TokenUpdate */
    CI("TokenUpdate", "Topic", P_TOPIC),
    CS("TokenUpdate", "Token", "APNs device token: wakes the device"),
    CS("TokenUpdate", "PushMagic", "sent in every push; the device checks it"),
    CS("TokenUpdate", "UnlockToken",
	"clears the passcode (ClearPasscode command)"),
    CI("TokenUpdate", "AwaitingConfiguration", P_AWAITING),
    CR("TokenUpdate", "NotOnConsole", P_RAWONLY),

    /* CheckOut */
    CR("CheckOut", "Topic", "matches the enrollment being checked out"),

    /* UserAuthenticate */
    CR("UserAuthenticate", "DigestResponse",
	"answer to the DigestChallenge; accepted, not verified"),

    /* SetBootstrapToken / GetBootstrapToken */
    CS("SetBootstrapToken", "BootstrapToken",
	"escrowed for the device; returned by GetBootstrapToken"),
    CR("SetBootstrapToken", "AwaitingConfiguration", P_AWAITING),
    CR("GetBootstrapToken", "AwaitingConfiguration", P_AWAITING),

    /* DeclarativeManagement */
    CR("DeclarativeManagement", "Endpoint",
	"selects the declarative-management answer"),
    CR("DeclarativeManagement", "Data",
	"status report of declarative management (latest kept)"),

    /* GetToken */
    CR("GetToken", "TokenServiceType", "selects the token service"),
    CR("GetToken", "TokenParameters", "parameters of the token request"),
    {INV_CHECKIN, "GetToken", "TokenParameters.SecurityToken",
	"watch pairing security token", 1, INV_KEPT_RAW},
    CR("GetToken", "TokenParameters.PhoneUDID", "watch pairing: the phone"),
    CR("GetToken", "TokenParameters.WatchUDID", "watch pairing: the watch"),

    /* The TLS layer in front of every check-in and report. */
    CI("TLS client certificate", "certificate SHA-256",
	"binds the device to its identity certificate; every message "
	"must present it"),

    /* ---- MDM command protocol: reports (connect endpoint) ---- */
    MF("report", "Status", "moves the queue on; NotNow keeps the command"),
    MF("report", "CommandUUID", "matches the report to the queued command"),
    MR("report", "UDID", P_ID),
    MR("report", "EnrollmentID", P_ID),
    MR("report", "UserID", P_USER),
    MR("report", "UserShortName", P_USER),
    MR("report", "UserLongName", P_USER),
    MR("report", "EnrollmentUserID", P_USER),
    MR("report", "RequestType", "echo of the command's type, if sent"),
    MR("report", "ErrorChain", "why a command failed, for the operator"),
    MR("report", "ErrorChain.ErrorCode", "error number, for the operator"),
    MR("report", "ErrorChain.ErrorDomain", "error domain, for the operator"),
    MR("report", "ErrorChain.LocalizedDescription",
	"error text in the device's language, for the operator"),
    MR("report", "ErrorChain.USEnglishDescription",
	"error text in US English, for the operator"),
    MR("report", "NotOnConsole", P_RAWONLY),
    MR("report", "*",
	"the command's answer (command-specific keys), kept for the "
	"operator who sent it"),
    MS("report", "ActivationLockBypassCode",
	"lifts Activation Lock (ActivationLockBypassCode answer)"),
    MS("report", "UnlockToken",
	"clears the passcode (RequestUnlockToken "
	"answer)"),
    MS("report", "QueryResponses.PushToken",
	"APNs token of the device (DeviceInformation answer)"),
    MS("report", "RotateResult.EncryptedNewRecoveryKey",
	"FileVault recovery key (RotateFileVaultKey answer)"),
    MS("report", "SecurityInfo.FileVaultUnlock.PrivateKeyExport",
	"FileVault unlock key (SecurityInfo answer)"),

    /* Commands as enqueued by the operator (not from Apple, but held). */
    MF("command", "CommandUUID", "identifies the command"),
    MF("command", "Command.RequestType", "what the command does"),
    MR("command", "*", "the command plist, sent to the device as is"),
    MS("command", "Command.UnlockToken", "ClearPasscode: the UnlockToken"),
    MS("command", "Command.PIN", "DeviceLock / EraseDevice PIN"),
    MS("command", "Command.NewPassword", "firmware or recovery-lock password"),
    MS("command", "Command.CurrentPassword",
	"firmware or recovery-lock password"),
    MS("command", "Command.Password", "password sent in a command"),
    MS("command", "Command.RedemptionCode", "app redemption code"),
    MS("command", "Command.PrivateKeyExportPassword",
	"password of an exported key"),

    /* ---- ADE: the MachineInfo Setup Assistant POSTs to /mdm/enroll
     * (CMS-signed by Apple's device-signing CA; store_enroll.c) ---- */
    AM("UDID", "names the device: its profile's Subject CN and the key of "
	"this record (purge by device ID)"),
    AM("SERIAL", "shown to the operator; ties the enrollment to the ADE "
	"record"),
    AM("PRODUCT", "shown to the operator (inventory)"),
    AM("VERSION", "shown to the operator; OS build at Setup Assistant"),
    AM("IMEI", "shown to the operator (cellular devices)"),
    AM("MEID", "shown to the operator (cellular devices)"),
    AM("LANGUAGE", "shown to the operator (Setup Assistant language)"),

    /* ---- ADE: device records from Apple Business/School Manager, kept
     * by picomdm-dep sync (store_ade.c), and the token's account ---- */
    AD("device record", "serial_number",
	"ties the ADE record to the enrolled device (purge by serial)"),
    AD("device record", "model", "shown to the operator"),
    AD("device record", "description", "shown to the operator"),
    AD("device record", "color", "shown to the operator"),
    AD("device record", "asset_tag", "shown to the operator"),
    AD("device record", "profile_status",
	"whether our enrollment profile is assigned or pushed"),
    AD("device record", "profile_uuid", "which profile is assigned"),
    AD("device record", "profile_assign_time", "when it was assigned"),
    AD("device record", "profile_push_time", "when the device fetched it"),
    AD("device record", "device_assigned_date",
	"when the device was assigned to this MDM server"),
    AD("device record", "device_assigned_by",
	"who assigned it (an e-mail address)"),
    AD("device record", "os", "shown to the operator; profile choice"),
    AD("device record", "device_family",
	"shown to the operator; profile choice"),
    AD("device record", "op_type",
	"sync bookkeeping (added, modified, "
	"deleted)"),
    AD("device record", "op_date", "sync bookkeeping"),
    AD("account", "org_name", "names the organisation of the token"),
    AD("account", "org_id", "identifies the organisation of the token"),
    AD("account", "server_uuid", "identifies this MDM server at Apple"),
    AD("account", "admin_id", "who made the token (an Apple ID)"),
    AD("account", "server_name", "names this MDM server in Apple "
	"Business Manager (token list)"),
    AD("account", "org_email", "shown to the operator (token list)"),
    AD("account", "org_phone", "shown to the operator"),
    AD("account", "org_address", "shown to the operator"),
    AD("account", "org_type", "shown to the operator (edu or org)"),
    AD("account", "org_version", "shown to the operator (v1 or v2)"),
    AD("server token", "access_token_expiry",
	"warns before the token expires (token list)"),
    AS("server token", "private key", "decrypts the server token Apple "
	"encrypts to the certificate (made by token new)"),
    AD("server token", "certificate", "uploaded to Apple Business Manager; "
	"Apple encrypts the server token to it"),
    AS("server token", "consumer_key", "OAuth credential of the token"),
    AS("server token", "consumer_secret", "OAuth credential of the token"),
    AS("server token", "access_token", "OAuth credential of the token"),
    AS("server token", "access_secret", "OAuth credential of the token"),

    /* ---- VPP: Apps and Books ---- */
    VP("client config", "appleId", "Apple ID of the token's owner"),
    VP("client config", "countryCode", "store country of the location"),
    VK("client config", "countryISO2ACode",
	"store country of the location (v2), shown by token list"),
    VK("client config", "locationName",
	"the location the token is for, shown by token list"),
    VK("client config", "mdmInfo.id",
	"the MDM that manages the location: sync claims a free location and "
	"leaves another MDM's alone unless --force"),
    VK("client config", "uId",
	"Apple's ID of the location's library, shown by token list"),
    VK("client config", "organizationId",
	"the organisation of the token (v1 only), shown by token list"),
    VK("client config", "organizationIdHash",
	"matches the token to the ADE account of the same organisation (v1)"),
    VK("client config", "facilitatorMemberId",
	"the facilitator member of the organisation (v1 only), shown by token "
	"list"),
    VK("client config", "location.locationId",
	"Apple's number for the token's location (v1 only), shown by token "
	"list"),
    VK("assets", "adamId",
	"identifies the app or book; key of the asset and its assignments"),
    VK("assets", "pricingParam", "the licence's price tier (STDQ, PLUS)"),
    VK("assets", "productType", "App or Book, shown to the operator"),
    VK("assets", "deviceAssignable",
	"whether it can be assigned to a device serial"),
    VP("assets", "isIrrevocable", "whether a licence can be taken back (v1)"),
    VK("assets", "revocable", "whether a licence can be taken back"),
    VK("assets", "assignedCount", "licences in use, shown to the operator"),
    VK("assets", "availableCount",
	"licences free to assign, checked before assigning"),
    VK("assets", "retiredCount", "licences retired, shown to the operator"),
    VK("assets", "totalCount", "licences bought, shown to the operator"),
    VK("assignments", "adamId",
	"the app or book assigned: show SERIAL's vpp list"),
    VK("assignments", "pricingParam", "the price tier of the licence used"),
    VK("assignments", "serialNumber",
	"the device the licence is assigned to (ties it to show SERIAL)"),
    VK("assignments", "clientUserId",
	"the user the licence is assigned to (our GUID)"),
    VK("app metadata", "id",
	"the app's adamId: key of its metadata, one record per token"),
    VK("app metadata", "name",
	"the app's name: show SERIAL's vpp list and the inventory"),
    VK("app metadata", "description.standard",
	"the App Store description, shown to the operator"),
    VK("app metadata", "artwork.url", "the icon's URL, shown to the operator"),
    VK("app metadata", "bundleId",
	"matches installed apps to licences: show SERIAL's vpp list"),
    VK("app metadata", "copyright", "shown to the operator"),
    VK("app metadata", "genreNames",
	"the App Store genres (joined by \", \"), shown to the operator"),
    VK("app metadata", "url", "the App Store page, shown to the operator"),
    VK("licences", "licenseId",
	"identifies the licence of an assignment (v1 only): what Apple "
	"support and v1 tools name it by"),
    VP("licences", "serialNumber",
	"device a licence is assigned to (purge by serial)"),
    VP("licences", "clientUserIdStr", "user a licence is assigned to"),
    VP("users", "userId", "Apple's number for the user (v1)"),
    VP("users", "itsIdHash", "Apple's hash of the user's account (v1)"),
    VK("users", "clientUserId",
	"our GUID for the user, registered with Apple"),
    VK("users", "email", "the address the invitation went to"),
    VK("users", "status", "Registered, Associated, Retired or Deleted"),
    VK("users", "inviteCode", "the code of the user's invitation"),
    VK("users", "idHash", "Apple's hash of the user's account"),
    VK("users", "managedAppleId", "the user's Managed Apple ID"),
    VSK("server token", "sToken", "authenticates every VPP request"),
    VK("server token", "orgName",
	"the organisation the token is for, shown by token list"),
    VK("server token", "expDate",
	"when the token expires: token list warns 30 days ahead"),
};

const size_t inventory_catalogue_len =
    sizeof(inventory_catalogue) / sizeof(inventory_catalogue[0]);

static const char *const service_names[INV__MAX] = {
    [INV_CHECKIN] = "check-in",
    [INV_COMMAND] = "command",
    [INV_ADE] = "ADE",
    [INV_VPP] = "VPP",
};

static const char *const service_titles[INV__MAX] = {
    [INV_CHECKIN] = "APNs / check-in protocol",
    [INV_COMMAND] = "MDM command protocol",
    [INV_ADE] = "Automated Device Enrollment (ABM/ASM)",
    [INV_VPP] = "Apps and Books (VPP)",
};

static const char *const kept_names[INV_KEPT__MAX] = {
    [INV_KEPT_FIELD] = "record",
    [INV_KEPT_RAW] = "raw",
    [INV_KEPT_PLANNED] = "planned",
};

const char *
inventory_service_name(enum inv_service s)
{
	return (unsigned)s < INV__MAX ? service_names[s] : "unknown";
}

const char *
inventory_service_title(enum inv_service s)
{
	return (unsigned)s < INV__MAX ? service_titles[s] : "unknown";
}

const char *
inventory_kept_name(enum inv_kept k)
{
	return (unsigned)k < INV_KEPT__MAX ? kept_names[k] : "unknown";
}

/*
 * Compare a catalogue field with a path that may hold array indices:
 * "ErrorChain[1].ErrorCode" matches "ErrorChain.ErrorCode".
 */
static int
path_eq(const char *row, const char *path)
{
	while (*row != '\0' || *path != '\0') {
		if (*path == '[') {
			while (*path != '\0' && *path != ']')
				path++;
			if (*path == ']')
				path++;
			continue;
		}
		if (*row != *path)
			return 0;
		row++;
		path++;
	}
	return 1;
}

const struct inv_row *
inventory_find(enum inv_service svc, const char *message, const char *field)
{
	const struct inv_row *r, *any_field = NULL, *any_msg = NULL;
	size_t		      i;

	for (i = 0; i < inventory_catalogue_len; i++) {
		r = &inventory_catalogue[i];
		if (r->service != svc)
			continue;
		if (strcmp(r->message, message) == 0) {
			if (path_eq(r->field, field))
				return r;
			if (strcmp(r->field, "*") == 0 && any_field == NULL)
				any_field = r;
		} else if (strcmp(r->message, "*") == 0 &&
		    path_eq(r->field, field) && any_msg == NULL)
			any_msg = r;
	}
	/* A shared row (identity keys) is more precise than a catch-all. */
	return any_msg != NULL ? any_msg : any_field;
}

int
inventory_secret_key(enum inv_service svc, const char *key)
{
	const struct inv_row *r;
	const char	     *last;
	size_t		      i;

	for (i = 0; i < inventory_catalogue_len; i++) {
		r = &inventory_catalogue[i];
		if (r->service != svc || !r->secret)
			continue;
		last = strrchr(r->field, '.');
		last = last != NULL ? last + 1 : r->field;
		if (strcmp(last, key) == 0)
			return 1;
	}
	return 0;
}
