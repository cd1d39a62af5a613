/*
 * enroll.c - the enrollment profile and ADE's MachineInfo.
 *
 * The profile is a Configuration profile with two payloads: a
 * com.apple.security.scep payload whose certificate becomes the device's
 * identity, and a com.apple.mdm payload that names it through
 * IdentityCertificateUUID. It is built from picomdm.conf (picomdm.conf(5)),
 * checked against Apple's schema for those payload types
 * (module/schema_profiles.c, from the mdm/profiles YAML files of
 * apple/device-management) and the common payload keys, then signed as
 * CMS SignedData (RFC 5652), as Apple's own tools sign profiles.
 *
 * MachineInfo: Setup Assistant POSTs a CMS SignedData whose content is a
 * plist of the device's UDID, SERIAL, PRODUCT, VERSION, IMEI, MEID and
 * LANGUAGE, signed with a certificate from Apple's device-signing CA
 * (machineinfo_ca). Only a verified one is answered with the profile.
 *
 * GET /mdm/enroll and POST /mdm/enroll are answered here; a refused
 * request gets no body, so it never carries the SCEP challenge.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "extern.h"
#include "picomdm/command.h"
#include "picomdm/enroll.h"
#include "picomdm/log.h"
#include "picomdm/plist.h"
#include "picomdm/schema.h"
#include "picomdm/store.h"
#include "picomdm/store_enroll.h"
#include "picomdm/util.h"

#define PROFILE_TYPE	 "application/x-apple-aspen-config"
#define MACHINEINFO_TYPE "application/pkcs7-signature"

/* Every string key of the configuration, for _set and _free. */
#define CONF_STRINGS(c)                                                     \
	{                                                                   \
		&(c)->server_url, &(c)->checkin_url, &(c)->push_topic,      \
		    &(c)->scep_url, &(c)->scep_challenge, &(c)->scep_name,  \
		    &(c)->scep_organization, &(c)->profile_identifier,      \
		    &(c)->profile_organization, &(c)->profile_display_name, \
		    &(c)->profile_sign_cert, &(c)->profile_sign_key,        \
		    &(c)->machineinfo_ca, &(c)->push_cert                   \
	}
static const char *const conf_string_keys[] = {"server_url", "checkin_url",
    "push_topic", "scep_url", "scep_challenge", "scep_name",
    "scep_organization", "profile_identifier", "profile_organization",
    "profile_display_name", "profile_sign_cert", "profile_sign_key",
    "machineinfo_ca", "push_cert"};

struct enroll {
	const struct enroll_conf *conf;
	struct config		 *own; /* enroll_load_file's */
	X509			 *signer;
	struct stack_st_X509	 *chain; /* STACK_OF(X509): after the signer */
	EVP_PKEY		 *key;
	X509_STORE		 *mi_ca;      /* NULL: MachineInfo refused */
	char			  topic[256]; /* the profile's Topic */
};

void
enroll_conf_defaults(struct enroll_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->access = ENROLL_ACCESS_OFF;
	c->sign_message = 1;
	c->check_out_when_removed = 1;
	c->access_rights = 8191;
	c->scep_key_size = 2048;
	c->scep_key_usage = 5;
}

void
enroll_conf_free(struct enroll_conf *c)
{
	char **s[] = CONF_STRINGS(c);
	size_t i;

	for (i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		if (*s[i] != NULL && s[i] == &c->scep_challenge)
			explicit_bzero(*s[i], strlen(*s[i]));
		free(*s[i]);
		*s[i] = NULL;
	}
}

int
enroll_conf_set(struct enroll_conf *c, const char *key, const char *val)
{
	char	**s[] = CONF_STRINGS(c);
	char	 *dup;
	long long n;
	size_t	  i;

	for (i = 0; i < sizeof(conf_string_keys) / sizeof(conf_string_keys[0]);
	     i++) {
		if (strcmp(key, conf_string_keys[i]) != 0)
			continue;
		if (*val == '\0')
			return -1;
		if ((dup = strdup(val)) == NULL)
			return -2;
		free(*s[i]);
		*s[i] = dup;
		return 0;
	}
	if (strcmp(key, "enroll_access") == 0) {
		if (strcmp(val, "off") == 0)
			c->access = ENROLL_ACCESS_OFF;
		else if (strcmp(val, "open") == 0)
			c->access = ENROLL_ACCESS_OPEN;
		else if (strcmp(val, "token") == 0)
			c->access = ENROLL_ACCESS_TOKEN;
		else
			return -1;
	} else if (strcmp(key, "scep_challenge_issued") == 0)
		return config_bool(val, &c->scep_challenge_issued);
	else if (strcmp(key, "sign_message") == 0)
		return config_bool(val, &c->sign_message);
	else if (strcmp(key, "check_out_when_removed") == 0)
		return config_bool(val, &c->check_out_when_removed);
	else if (strcmp(key, "access_rights") == 0) {
		if (num_parse(val, 1, 8191, &n) == -1)
			return -1;
		c->access_rights = (int)n;
	} else if (strcmp(key, "scep_key_size") == 0) {
		if (num_parse(val, 1024, 4096, &n) == -1 ||
		    (n != 1024 && n != 2048 && n != 4096))
			return -1;
		c->scep_key_size = (int)n;
	} else if (strcmp(key, "scep_key_usage") == 0) {
		if (num_parse(val, 1, 5, &n) == -1 ||
		    (n != 1 && n != 4 && n != 5))
			return -1;
		c->scep_key_usage = (int)n;
	} else
		return 1;
	return 0;
}

/*
 * The schema. Apple keeps the keys every payload shares
 * (CommonPayloadKeys.yaml) and those of the profile itself
 * (TopLevel.yaml) apart from the payload files gen-schema reads; the ones
 * picomdm writes or accepts are listed here, with Apple's types and
 * presence.
 */
static const struct schema_key common_keys[] = {
    {"PayloadType", SCHEMA_STRING, 1, NULL, 0},
    {"PayloadVersion", SCHEMA_INTEGER, 1, NULL, 0},
    {"PayloadIdentifier", SCHEMA_STRING, 1, NULL, 0},
    {"PayloadUUID", SCHEMA_STRING, 1, NULL, 0},
    {"PayloadDisplayName", SCHEMA_STRING, 0, NULL, 0},
    {"PayloadDescription", SCHEMA_STRING, 0, NULL, 0},
    {"PayloadOrganization", SCHEMA_STRING, 0, NULL, 0},
};
static const struct schema_key payload_item[] = {
    {NULL, SCHEMA_DICT, 0, NULL, 0}, /* checked per PayloadType */
};
static const struct schema_key top_keys[] = {
    {"PayloadContent", SCHEMA_ARRAY, 1, payload_item, 1},
    {"PayloadType", SCHEMA_STRING, 1, NULL, 0},
    {"PayloadVersion", SCHEMA_INTEGER, 1, NULL, 0},
    {"PayloadIdentifier", SCHEMA_STRING, 1, NULL, 0},
    {"PayloadUUID", SCHEMA_STRING, 1, NULL, 0},
    {"PayloadDisplayName", SCHEMA_STRING, 0, NULL, 0},
    {"PayloadDescription", SCHEMA_STRING, 0, NULL, 0},
    {"PayloadOrganization", SCHEMA_STRING, 0, NULL, 0},
    {"PayloadRemovalDisallowed", SCHEMA_BOOL, 0, NULL, 0},
    {"PayloadScope", SCHEMA_STRING, 0, NULL, 0},
};

static const struct schema_msg *
profile_schema(const char *type)
{
	size_t i;

	for (i = 0; i < schema_profiles_len; i++)
		if (strcmp(schema_profiles[i].name, type) == 0)
			return &schema_profiles[i];
	return NULL;
}

static int check_dict(plist_t, const struct schema_key *, size_t,
    const struct schema_key *, size_t, const char *, char *, size_t);

/* One value against its key: type, then contents. 0 or -1 with err. */
static int
check_value(plist_t v, const struct schema_key *k, const char *path, char *err,
    size_t errsz)
{
	uint32_t i, n;

	if (!plist_is_schema_type(v, k->type)) {
		snprintf(
		    err, errsz, "%s: want %s", path, schema_type_name(k->type));
		return -1;
	}
	if (k->type == SCHEMA_DICT && k->subkeys != NULL)
		return check_dict(
		    v, k->subkeys, k->nsubkeys, NULL, 0, path, err, errsz);
	if (k->type == SCHEMA_ARRAY && k->subkeys != NULL) {
		n = plist_array_get_size(v);
		for (i = 0; i < n; i++)
			if (check_value(plist_array_get_item(v, i),
				&k->subkeys[0], path, err, errsz) == -1)
				return -1;
	}
	return 0;
}

/*
 * Every key of dict must be in keys[] or extra[] and match it; every
 * required key must be there. path names the dict in messages.
 */
static int
check_dict(plist_t dict, const struct schema_key *keys, size_t n,
    const struct schema_key *extra, size_t nextra, const char *path, char *err,
    size_t errsz)
{
	const struct schema_key *k;
	plist_dict_iter		 it = NULL;
	plist_t			 v = NULL;
	char			*name = NULL, sub[256];
	size_t			 i;
	int			 rc = 0;

	for (i = 0; i < n + nextra; i++) {
		k = i < n ? &keys[i] : &extra[i - n];
		if (k->required && plist_dict_get_item(dict, k->key) == NULL) {
			snprintf(err, errsz, "%s: %s missing", path, k->key);
			return -1;
		}
	}
	plist_dict_new_iter(dict, &it);
	if (it == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	for (;;) {
		name = NULL;
		v = NULL;
		plist_dict_next_item(dict, it, &name, &v);
		if (name == NULL)
			break;
		if ((k = schema_key_find(keys, n, name)) == NULL &&
		    (extra == NULL ||
			(k = schema_key_find(extra, nextra, name)) == NULL)) {
			snprintf(err, errsz, "%s: unknown key %s", path, name);
			rc = -1;
		} else if (snprintf(sub, sizeof(sub), "%s.%s", path, name) <
			0 ||
		    check_value(v, k, sub, err, errsz) == -1)
			rc = -1;
		free(name);
		if (rc == -1)
			break;
	}
	free(it);
	return rc;
}

/* Apple's UUID format (com.apple.mdm.yaml, IdentityCertificateUUID). */
static int
uuid_like(const char *s)
{
	static const int groups[] = {8, 4, 4, 4, 12};
	size_t		 i, j;

	for (i = 0; i < 5; i++) {
		for (j = 0; j < (size_t)groups[i]; j++, s++)
			if (!((*s >= '0' && *s <= '9') ||
				(*s >= 'a' && *s <= 'z') ||
				(*s >= 'A' && *s <= 'Z')))
				return 0;
		if (*s++ != (i < 4 ? '-' : '\0'))
			return 0;
	}
	return 1;
}

static int
https_url(const char *s)
{
	return s != NULL && strncmp(s, "https://", 8) == 0 && s[8] != '\0';
}

/* The rules Apple states in prose or as format/rangelist. */
static int
check_payload_rules(
    plist_t p, const char *type, const char *path, char *err, size_t errsz)
{
	plist_t	 pc, v;
	uint64_t u;

	if (strcmp(type, "com.apple.mdm") == 0) {
		if (!https_url(plist_dict_str(p, "ServerURL")) ||
		    ((v = plist_dict_get_item(p, "CheckInURL")) != NULL &&
			!https_url(plist_dict_str(p, "CheckInURL")))) {
			snprintf(err, errsz, "%s: URLs must be https://", path);
			return -1;
		}
		if (strncmp(plist_dict_str(p, "Topic"), "com.apple.mgmt.",
			15) != 0) {
			snprintf(
			    err, errsz, "%s.Topic: not com.apple.mgmt.*", path);
			return -1;
		}
		if (!uuid_like(plist_dict_str(p, "IdentityCertificateUUID"))) {
			snprintf(err, errsz,
			    "%s.IdentityCertificateUUID: "
			    "not a UUID",
			    path);
			return -1;
		}
		if ((v = plist_dict_get_item(p, "AccessRights")) != NULL) {
			plist_get_uint_val(v, &u);
			if (u == 0 || u > 8191 || ((u & 2) && !(u & 1)) ||
			    ((u & 128) && !(u & 64))) {
				snprintf(err, errsz,
				    "%s.AccessRights: not "
				    "allowed",
				    path);
				return -1;
			}
		}
	} else if (strcmp(type, "com.apple.security.scep") == 0) {
		pc = plist_dict_get_item(p, "PayloadContent");
		if (plist_dict_str(pc, "URL") == NULL) {
			snprintf(
			    err, errsz, "%s.PayloadContent.URL missing", path);
			return -1;
		}
		if ((v = plist_dict_get_item(pc, "Keysize")) != NULL) {
			plist_get_uint_val(v, &u);
			if (u != 1024 && u != 2048 && u != 4096) {
				snprintf(err, errsz,
				    "%s.PayloadContent."
				    "Keysize: not 1024, 2048 or 4096",
				    path);
				return -1;
			}
		}
	}
	return 0;
}

int
enroll_profile_check(plist_t root, char *err, size_t errsz)
{
	const struct schema_msg *s;
	const char		*type, *idc, *scep_uuid = NULL;
	plist_t			 pl, p;
	uint32_t		 i, n;
	char			 path[64];

	if (root == NULL || plist_get_node_type(root) != PLIST_DICT) {
		snprintf(err, errsz, "profile: not a dictionary");
		return -1;
	}
	if (check_dict(root, top_keys, sizeof(top_keys) / sizeof(top_keys[0]),
		NULL, 0, "profile", err, errsz) == -1)
		return -1;
	if (strcmp(plist_dict_str(root, "PayloadType"), "Configuration") != 0) {
		snprintf(err, errsz, "profile: PayloadType not Configuration");
		return -1;
	}
	if (!uuid_like(plist_dict_str(root, "PayloadUUID"))) {
		snprintf(err, errsz, "profile.PayloadUUID: not a UUID");
		return -1;
	}
	pl = plist_dict_get_item(root, "PayloadContent");
	if ((n = plist_array_get_size(pl)) == 0) {
		snprintf(err, errsz, "profile: no payload");
		return -1;
	}
	for (i = 0; i < n; i++) {
		p = plist_array_get_item(pl, i);
		snprintf(path, sizeof(path), "PayloadContent[%u]", i);
		if ((type = plist_dict_str(p, "PayloadType")) == NULL) {
			snprintf(err, errsz, "%s: PayloadType missing", path);
			return -1;
		}
		if ((s = profile_schema(type)) == NULL) {
			snprintf(err, errsz,
			    "%s: payload type %s not in the "
			    "schema",
			    path, type);
			return -1;
		}
		snprintf(path, sizeof(path), "%s", s->name);
		if (check_dict(p, s->keys, s->nkeys, common_keys,
			sizeof(common_keys) / sizeof(common_keys[0]), path, err,
			errsz) == -1 ||
		    check_payload_rules(p, type, path, err, errsz) == -1)
			return -1;
		if (!uuid_like(plist_dict_str(p, "PayloadUUID"))) {
			snprintf(
			    err, errsz, "%s.PayloadUUID: not a UUID", path);
			return -1;
		}
		if (strcmp(type, "com.apple.security.scep") == 0)
			scep_uuid = plist_dict_str(p, "PayloadUUID");
	}
	/* The MDM payload's identity must be a payload of this profile. */
	for (i = 0; i < n; i++) {
		p = plist_array_get_item(pl, i);
		if (strcmp(plist_dict_str(p, "PayloadType"), "com.apple.mdm") !=
		    0)
			continue;
		idc = plist_dict_str(p, "IdentityCertificateUUID");
		if (scep_uuid == NULL || strcmp(idc, scep_uuid) != 0) {
			snprintf(err, errsz,
			    "com.apple.mdm: "
			    "IdentityCertificateUUID names no SCEP payload");
			return -1;
		}
	}
	return 0;
}

/* Subject [[["O", org]], [["CN", cn]]]: one RDN per entry. */
static plist_t
subject_new(const char *org, const char *cn)
{
	plist_t	    subj = plist_new_array(), rdn, pair;
	const char *kv[2][2] = {{"O", org}, {"CN", cn}};
	size_t	    i;

	for (i = 0; i < 2; i++) {
		if (kv[i][1] == NULL)
			continue;
		rdn = plist_new_array();
		pair = plist_new_array();
		plist_array_append_item(pair, plist_new_string(kv[i][0]));
		plist_array_append_item(pair, plist_new_string(kv[i][1]));
		plist_array_append_item(rdn, pair);
		plist_array_append_item(subj, rdn);
	}
	return subj;
}

/* The common keys of a payload. */
static void
payload_common(plist_t p, const char *type, const char *ident, const char *uuid,
    const char *name, const char *org)
{
	plist_dict_set_item(p, "PayloadType", plist_new_string(type));
	plist_dict_set_item(p, "PayloadVersion", plist_new_uint(1));
	plist_dict_set_item(p, "PayloadIdentifier", plist_new_string(ident));
	plist_dict_set_item(p, "PayloadUUID", plist_new_string(uuid));
	plist_dict_set_item(p, "PayloadDisplayName", plist_new_string(name));
	if (org != NULL)
		plist_dict_set_item(
		    p, "PayloadOrganization", plist_new_string(org));
}

/* The profile; chal the SCEP challenge (NULL: scep_challenge, if any). */
static plist_t
profile_plist(const struct enroll *e, const char *cn, const char *chal)
{
	const struct enroll_conf *c = e->conf;
	plist_t			  root, scep, sc, mdm, caps, content;
	char			  u_top[37], u_scep[37], u_mdm[37];
	char			  ident[300], cnbuf[300];
	const char		 *id = c->profile_identifier;
	const char		 *org = c->profile_organization;

	if (command_uuid_new(u_top) == -1 || command_uuid_new(u_scep) == -1 ||
	    command_uuid_new(u_mdm) == -1)
		return NULL;
	if (snprintf(cnbuf, sizeof(cnbuf), "picomdm device %s",
		cn != NULL ? cn : u_top) >= (int)sizeof(cnbuf))
		return NULL;

	root = plist_new_dict();
	content = plist_new_array();
	plist_dict_set_item(root, "PayloadContent", content);
	payload_common(root, "Configuration", id, u_top,
	    c->profile_display_name != NULL ? c->profile_display_name
					    : "Device management",
	    org);
	plist_dict_set_item(root, "PayloadDescription",
	    plist_new_string(
		"Enrolls this device in device management: a "
		"device identity certificate from SCEP, then MDM."));

	scep = plist_new_dict();
	snprintf(ident, sizeof(ident), "%s.scep", id);
	payload_common(scep, "com.apple.security.scep", ident, u_scep,
	    "Device identity (SCEP)", org);
	sc = plist_new_dict();
	plist_dict_set_item(sc, "URL", plist_new_string(c->scep_url));
	if (c->scep_name != NULL)
		plist_dict_set_item(sc, "Name", plist_new_string(c->scep_name));
	plist_dict_set_item(
	    sc, "Subject", subject_new(c->scep_organization, cnbuf));
	if (chal == NULL)
		chal = c->scep_challenge;
	if (chal != NULL)
		plist_dict_set_item(sc, "Challenge", plist_new_string(chal));
	plist_dict_set_item(
	    sc, "Keysize", plist_new_uint((uint64_t)c->scep_key_size));
	plist_dict_set_item(sc, "Key Type", plist_new_string("RSA"));
	plist_dict_set_item(
	    sc, "Key Usage", plist_new_uint((uint64_t)c->scep_key_usage));
	plist_dict_set_item(scep, "PayloadContent", sc);
	plist_array_append_item(content, scep);

	mdm = plist_new_dict();
	snprintf(ident, sizeof(ident), "%s.mdm", id);
	payload_common(
	    mdm, "com.apple.mdm", ident, u_mdm, "Device management", org);
	plist_dict_set_item(mdm, "ServerURL", plist_new_string(c->server_url));
	if (c->checkin_url != NULL)
		plist_dict_set_item(
		    mdm, "CheckInURL", plist_new_string(c->checkin_url));
	plist_dict_set_item(mdm, "Topic", plist_new_string(e->topic));
	plist_dict_set_item(
	    mdm, "IdentityCertificateUUID", plist_new_string(u_scep));
	plist_dict_set_item(
	    mdm, "SignMessage", plist_new_bool(c->sign_message ? 1 : 0));
	plist_dict_set_item(
	    mdm, "AccessRights", plist_new_uint((uint64_t)c->access_rights));
	plist_dict_set_item(mdm, "CheckOutWhenRemoved",
	    plist_new_bool(c->check_out_when_removed ? 1 : 0));
	/*
	 * What picomdm supports: user channels (per-user connections) and
	 * Bootstrap Token escrow. Not com.apple.mdm.token: GetToken is
	 * answered 501 (README.md, "The protocol as implemented").
	 */
	caps = plist_new_array();
	plist_array_append_item(
	    caps, plist_new_string("com.apple.mdm.per-user-connections"));
	plist_array_append_item(
	    caps, plist_new_string("com.apple.mdm.bootstraptoken"));
	plist_dict_set_item(mdm, "ServerCapabilities", caps);
	plist_array_append_item(content, mdm);
	return root;
}

/* Sign data as an attached CMS SignedData in DER. 0 or -1. */
static int
cms_sign_der(const struct enroll *e, const void *data, size_t len,
    unsigned char **out, size_t *outlen)
{
	BIO		*in = NULL;
	CMS_ContentInfo *cms = NULL;
	unsigned char	*der = NULL;
	int		 n, rc = -1;

	if ((in = BIO_new_mem_buf(data, (int)len)) == NULL)
		goto out;
	if ((cms = CMS_sign(e->signer, e->key, e->chain, in,
		 CMS_BINARY | CMS_NOSMIMECAP)) == NULL)
		goto out;
	if ((n = i2d_CMS_ContentInfo(cms, &der)) <= 0)
		goto out;
	/* The response's body is released with free(). */
	if ((*out = malloc((size_t)n)) == NULL)
		goto out;
	memcpy(*out, der, (size_t)n);
	*outlen = (size_t)n;
	rc = 0;
out:
	if (rc == -1)
		log_error("enroll: cannot sign the profile: %s",
		    ERR_reason_error_string(ERR_peek_last_error()));
	ERR_clear_error();
	OPENSSL_free(der);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	return rc;
}

plist_t
enroll_profile_plist(const struct enroll *e, const char *cn)
{
	return profile_plist(e, cn, NULL);
}

int
enroll_profile_signed(
    const struct enroll *e, const char *cn, unsigned char **out, size_t *outlen)
{
	return enroll_profile_signed_with(e, cn, NULL, out, outlen);
}

int
enroll_profile_signed_with(const struct enroll *e, const char *cn,
    const char *challenge, unsigned char **out, size_t *outlen)
{
	plist_t root;
	char   *xml = NULL, err[256];
	size_t	xlen = 0;
	int	rc = -1;

	if ((root = profile_plist(e, cn, challenge)) == NULL) {
		log_error("enroll: cannot build the profile");
		return -1;
	}
	if (enroll_profile_check(root, err, sizeof(err)) == -1) {
		log_error("enroll: profile fails the schema: %s", err);
		goto out;
	}
	if (plist_to_xml_buf(root, &xml, &xlen) == -1) {
		log_error("enroll: cannot serialise the profile");
		goto out;
	}
	rc = cms_sign_der(e, xml, xlen, out, outlen);
out:
	/* The XML holds the challenge. */
	if (xml != NULL)
		freezero(xml, xlen);
	plist_free(root);
	return rc;
}

/* A PEM bundle into a new store; NULL (err set) on failure. */
static X509_STORE *
store_from_pem(const char *path, char *err, size_t errsz)
{
	X509_STORE *st = NULL;
	BIO	   *bio = NULL;
	X509	   *x;
	int	    n = 0;

	if ((bio = BIO_new_file(path, "r")) == NULL ||
	    (st = X509_STORE_new()) == NULL) {
		snprintf(err, errsz, "machineinfo_ca: cannot read %s", path);
		goto fail;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (X509_STORE_add_cert(st, x) <= 0) {
			X509_free(x);
			snprintf(err, errsz,
			    "machineinfo_ca: %s: bad "
			    "certificate",
			    path);
			goto fail;
		}
		X509_free(x);
		n++;
	}
	if (n == 0) {
		snprintf(
		    err, errsz, "machineinfo_ca: no certificate in %s", path);
		goto fail;
	}
	/* Apple's device certificates carry no S/MIME purpose. */
	X509_STORE_set_purpose(st, X509_PURPOSE_ANY);
	ERR_clear_error();
	BIO_free(bio);
	return st;
fail:
	ERR_clear_error();
	BIO_free(bio);
	X509_STORE_free(st);
	return NULL;
}

/* The signer certificate and the chain that follows it in one PEM. */
static int
load_signer(struct enroll *e, const char *path, char *err, size_t errsz)
{
	BIO  *bio;
	X509 *x;

	if ((bio = BIO_new_file(path, "r")) == NULL ||
	    (e->signer = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		snprintf(err, errsz,
		    "profile_sign_cert: no certificate in "
		    "%s",
		    path);
		BIO_free(bio);
		ERR_clear_error();
		return -1;
	}
	if ((e->chain = sk_X509_new_null()) == NULL) {
		BIO_free(bio);
		return -1;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
		if (sk_X509_push(e->chain, x) <= 0) {
			X509_free(x);
			BIO_free(bio);
			return -1;
		}
	ERR_clear_error();
	BIO_free(bio);
	return 0;
}

/* No passphrase prompt on a terminal: an encrypted key is refused. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static int
load_key(struct enroll *e, const char *path, char *err, size_t errsz)
{
	BIO *bio;

	if ((bio = BIO_new_file(path, "r")) == NULL ||
	    (e->key = PEM_read_bio_PrivateKey(
		 bio, NULL, no_passphrase, NULL)) == NULL) {
		snprintf(err, errsz,
		    "profile_sign_key: no unencrypted "
		    "private key in %s",
		    path);
		BIO_free(bio);
		ERR_clear_error();
		return -1;
	}
	BIO_free(bio);
	if (X509_check_private_key(e->signer, e->key) != 1) {
		snprintf(err, errsz,
		    "profile_sign_key: %s does not match "
		    "profile_sign_cert",
		    path);
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/*
 * The profile's Topic: the UID in the subject of the APNs push
 * certificate (push_cert), which Apple issues as "UID=com.apple.mgmt.
 * External.<uuid>, CN=APSP:<uuid>"; or push_topic. When both are given
 * they must agree. 0 or -1 with err.
 */
static int
load_topic(struct enroll *e, char *err, size_t errsz)
{
	const struct enroll_conf *c = e->conf;
	X509			 *x = NULL;
	X509_NAME_ENTRY		 *ne;
	BIO			 *bio = NULL;
	unsigned char		 *uid = NULL;
	int			  i, n, rc = -1;

	if (c->push_cert == NULL) {
		if (strlcpy(e->topic, c->push_topic, sizeof(e->topic)) >=
		    sizeof(e->topic)) {
			snprintf(err, errsz, "push_topic: too long");
			return -1;
		}
		return 0;
	}
	if ((bio = BIO_new_file(c->push_cert, "r")) == NULL ||
	    (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
		snprintf(err, errsz, "push_cert: no certificate in %s",
		    c->push_cert);
		goto out;
	}
	if ((i = X509_NAME_get_index_by_NID(
		 X509_get_subject_name(x), NID_userId, -1)) < 0 ||
	    (ne = X509_NAME_get_entry(X509_get_subject_name(x), i)) == NULL ||
	    (n = ASN1_STRING_to_UTF8(&uid, X509_NAME_ENTRY_get_data(ne))) <=
		0) {
		snprintf(err, errsz,
		    "push_cert: %s has no UID (topic) in its "
		    "subject",
		    c->push_cert);
		goto out;
	}
	if ((size_t)n >= sizeof(e->topic) || memchr(uid, '\0', (size_t)n)) {
		snprintf(
		    err, errsz, "push_cert: %s: unusable UID", c->push_cert);
		goto out;
	}
	memcpy(e->topic, uid, (size_t)n);
	e->topic[n] = '\0';
	if (c->push_topic != NULL && strcmp(c->push_topic, e->topic) != 0) {
		snprintf(err, errsz,
		    "push_topic %s is not the topic of "
		    "push_cert (%s)",
		    c->push_topic, e->topic);
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
		log_warn("enroll: push_cert %s has expired: devices enroll, "
			 "but pushes will fail",
		    c->push_cert);
	rc = 0;
out:
	ERR_clear_error();
	OPENSSL_free(uid);
	X509_free(x);
	BIO_free(bio);
	return rc;
}

int
enroll_load(
    const struct enroll_conf *c, struct enroll **out, char *err, size_t errsz)
{
	struct enroll *e = NULL;
	unsigned char *der = NULL;
	size_t	       derlen = 0;
	const char    *missing = NULL;

	*out = NULL;
	if (c->access == ENROLL_ACCESS_OFF && c->server_url == NULL)
		return 0;
	if (c->server_url == NULL)
		missing = "server_url";
	else if (c->push_topic == NULL && c->push_cert == NULL)
		missing = "push_topic or push_cert";
	else if (c->scep_url == NULL)
		missing = "scep_url";
	else if (c->profile_identifier == NULL)
		missing = "profile_identifier";
	else if (c->profile_sign_cert == NULL)
		missing = "profile_sign_cert";
	else if (c->profile_sign_key == NULL)
		missing = "profile_sign_key";
	if (missing != NULL) {
		snprintf(err, errsz, "enrollment needs %s", missing);
		return -1;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	e->conf = c;
	if (load_topic(e, err, errsz) == -1 ||
	    load_signer(e, c->profile_sign_cert, err, errsz) == -1 ||
	    load_key(e, c->profile_sign_key, err, errsz) == -1)
		goto fail;
	if (c->machineinfo_ca != NULL &&
	    (e->mi_ca = store_from_pem(c->machineinfo_ca, err, errsz)) == NULL)
		goto fail;
	/* One profile now: a configuration Apple's schema refuses (a topic
	 * outside com.apple.mgmt., an http URL) stops start-up. */
	{
		plist_t root = enroll_profile_plist(e, NULL);

		if (root == NULL) {
			snprintf(err, errsz, "out of memory");
			goto fail;
		}
		if (enroll_profile_check(root, err, errsz) == -1) {
			plist_free(root);
			goto fail;
		}
		plist_free(root);
	}
	if (enroll_profile_signed(e, NULL, &der, &derlen) == -1) {
		snprintf(err, errsz, "cannot sign a profile with %s",
		    c->profile_sign_key);
		goto fail;
	}
	free(der);
	*out = e;
	return 0;
fail:
	enroll_free(e);
	return -1;
}

void
enroll_free(struct enroll *e)
{
	if (e == NULL)
		return;
	X509_free(e->signer);
	sk_X509_pop_free(e->chain, X509_free);
	EVP_PKEY_free(e->key);
	X509_STORE_free(e->mi_ca);
	if (e->own != NULL) {
		config_free(e->own);
		free(e->own);
	}
	free(e);
}

int
enroll_access(const struct enroll *e)
{
	return e != NULL ? e->conf->access : ENROLL_ACCESS_OFF;
}

const char *
enroll_topic(const struct enroll *e)
{
	return e != NULL ? e->topic : NULL;
}

struct enroll *
enroll_load_file(const char *path, char *err, size_t errsz)
{
	struct config *cfg;
	struct enroll *e = NULL;

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	config_defaults(cfg);
	if (config_load(cfg, path) == -1) {
		snprintf(err, errsz, "%s: not a usable picomdm.conf", path);
		goto fail;
	}
	if (enroll_load(&cfg->enroll, &e, err, errsz) == -1)
		goto fail;
	if (e == NULL) {
		snprintf(err, errsz,
		    "%s: enrollment is not configured "
		    "(server_url)",
		    path);
		goto fail;
	}
	e->own = cfg;
	return e;
fail:
	config_free(cfg);
	free(cfg);
	return NULL;
}

/* MachineInfo strings: the keys Apple documents, each at most this. */
#define MI_STR_MAX 240

int
enroll_machineinfo_verify(const struct enroll *e, const void *body, size_t len,
    struct enroll_machineinfo *mi, const char **reason)
{
	const unsigned char *p = body;
	CMS_ContentInfo	    *cms = NULL;
	STACK_OF(CMS_SignerInfo) * si;
	BIO	    *out = NULL;
	BUF_MEM	    *bm;
	const char **fields[] = {&mi->udid, &mi->serial, &mi->product,
	    &mi->version, &mi->imei, &mi->meid, &mi->language};
	static const char *const names[] = {
	    "UDID", "SERIAL", "PRODUCT", "VERSION", "IMEI", "MEID", "LANGUAGE"};
	plist_t v;
	size_t	i;
	int	rc = 400;

	memset(mi, 0, sizeof(*mi));
	if (len == 0 || len > ENROLL_MACHINEINFO_MAX) {
		*reason = "MachineInfo: empty or too large";
		return 400;
	}
	if ((cms = d2i_CMS_ContentInfo(NULL, &p, (long)len)) == NULL ||
	    p != (const unsigned char *)body + len) {
		*reason = "MachineInfo: not signed (no CMS SignedData)";
		goto out;
	}
	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed ||
	    (si = CMS_get0_SignerInfos(cms)) == NULL ||
	    sk_CMS_SignerInfo_num(si) == 0) {
		*reason = "MachineInfo: not signed (no signer)";
		goto out;
	}
	if (e->mi_ca == NULL) {
		*reason = "MachineInfo: no machineinfo_ca configured";
		rc = 403;
		goto out;
	}
	if ((out = BIO_new(BIO_s_mem())) == NULL) {
		rc = 500;
		*reason = "out of memory";
		goto out;
	}
	if (CMS_verify(cms, NULL, e->mi_ca, NULL, out, CMS_BINARY) != 1) {
		*reason = "MachineInfo: signature does not verify against "
			  "machineinfo_ca";
		rc = 403;
		goto out;
	}
	BIO_get_mem_ptr(out, &bm);
	if (plist_safe_parse(bm->data, bm->length, &mi->root) !=
	    PLIST_SAFE_OK) {
		*reason = "MachineInfo: content is not an XML plist dict";
		goto out;
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((v = plist_dict_get_item(mi->root, names[i])) == NULL)
			continue;
		if ((*fields[i] = plist_dict_str(mi->root, names[i])) == NULL ||
		    strlen(*fields[i]) > MI_STR_MAX) {
			*reason = "MachineInfo: a field is not a short string";
			goto out;
		}
	}
	if (mi->udid == NULL || *mi->udid == '\0') {
		*reason = "MachineInfo: UDID missing";
		goto out;
	}
	rc = 0;
out:
	ERR_clear_error();
	BIO_free(out);
	CMS_ContentInfo_free(cms);
	if (rc != 0)
		enroll_machineinfo_free(mi);
	return rc;
}

void
enroll_machineinfo_free(struct enroll_machineinfo *mi)
{
	plist_free(mi->root);
	memset(mi, 0, sizeof(*mi));
}

/* Is the content type ct (parameters after ';' ignored)? */
static int
type_is(const char *ct, const char *want)
{
	size_t n = strlen(want);

	return strncasecmp(ct, want, n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* See enroll.h. */
int
enroll_token_new(char out[ENROLL_TOKEN_LEN + 1])
{
	unsigned char r[ENROLL_TOKEN_LEN / 2];

	if (RAND_bytes(r, sizeof(r)) != 1)
		return -1;
	hex_encode(r, sizeof(r), out);
	explicit_bzero(r, sizeof(r));
	return 0;
}

/* See enroll.h. */
int
enroll_token_valid(const char *s)
{
	size_t i;

	for (i = 0; i < ENROLL_TOKEN_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
			(s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[i] == '\0';
}

/*
 * The value of token= in a query string, copied into out when it is
 * shaped like a token. 0, or -1 when absent, malformed or given twice.
 */
static int
query_token(const char *q, char out[ENROLL_TOKEN_LEN + 1])
{
	const char *p, *amp;
	size_t	    n;
	int	    seen = 0;

	for (p = q; p != NULL && *p != '\0'; p = amp ? amp + 1 : NULL) {
		amp = strchr(p, '&');
		n = amp ? (size_t)(amp - p) : strlen(p);
		if (n < 6 || strncmp(p, "token=", 6) != 0)
			continue;
		if (seen++ || n - 6 != ENROLL_TOKEN_LEN)
			return -1;
		memcpy(out, p + 6, ENROLL_TOKEN_LEN);
		out[ENROLL_TOKEN_LEN] = '\0';
	}
	return seen == 1 && enroll_token_valid(out) ? 0 : -1;
}

/*
 * What one enrollment writes, in one operation of the writer: a token's
 * use, a verified MachineInfo, an issued SCEP challenge. A positive
 * result is the HTTP refusal (the writer then discards the operation).
 */
struct enroll_op {
	int			  use_token;
	unsigned char		  hash[32];
	struct store_machineinfo *mi;
	int			  issue;
	struct store_enroll_token chal;
};

static int
enroll_op_run(struct store_txn *t, void *arg)
{
	struct enroll_op *op = arg;
	int		  rc;

	if (op->use_token) {
		rc = store_enroll_token_use(t, op->hash, NULL);
		if (rc == STORE_ENOTFOUND || rc == STORE_EINVAL)
			return 403;
		if (rc != 0)
			return rc;
	}
	if (op->mi != NULL && (rc = store_machineinfo_put(t, op->mi)) != 0)
		return rc;
	if (op->issue) {
		op->chal.expires_at =
		    store_txn_now(t) + (uint64_t)ENROLL_CHALLENGE_TTL * 1000000u;
		if ((rc = store_enroll_token_put(t, &op->chal)) != 0)
			return rc;
	}
	return 0;
}

/*
 * GET or POST /mdm/enroll (main.c routes it here with the body read).
 * GET: the profile when access is open, or, in token mode, for a valid,
 * unexpired, unused ?token= which is marked used in the same committed
 * write that precedes the answer. POST: a MachineInfo; it is stored
 * (committed) and the profile answered when it verifies, in either mode
 * (Apple's signature is its proof). With scep_challenge_issued the
 * profile carries a fresh challenge, stored (as its SHA-256, expiring)
 * in the same write, which picomdmctl scep-verify accepts once. The
 * profile is made before anything is written, so a token is never spent
 * on a failed answer. Refusals
 * carry no body: nothing of the profile, so never its challenge.
 */
void
enroll_handle(
    const struct server *srv, const struct request *req, struct response *resp)
{
	struct enroll_machineinfo mi;
	struct store_machineinfo  sm;
	struct enroll_op	  op;
	char			  tok[ENROLL_TOKEN_LEN + 1];
	char			  chal[ENROLL_TOKEN_LEN + 1];
	unsigned char		 *der = NULL;
	size_t			  derlen = 0;
	const char		 *reason = NULL, *cn = NULL;
	int			  rc, access = enroll_access(srv->enroll);

	if (access == ENROLL_ACCESS_OFF) {
		response_set(resp, 404, "enrollment not enabled");
		return;
	}
	memset(&mi, 0, sizeof(mi));
	memset(&op, 0, sizeof(op));
	chal[0] = '\0';
	if (strcmp(req->method, "POST") == 0) {
		if (!type_is(req->content_type, MACHINEINFO_TYPE)) {
			response_set(
			    resp, 415, "MachineInfo: want " MACHINEINFO_TYPE);
			return;
		}
		rc = enroll_machineinfo_verify(
		    srv->enroll, req->body, req->body_len, &mi, &reason);
		if (rc != 0) {
			response_set(resp, rc, reason);
			return;
		}
		strlcpy(resp->id, mi.udid, sizeof(resp->id));
		cn = mi.udid;
	} else if (strcmp(req->method, "GET") != 0) {
		response_set(resp, 405, "enrollment takes GET or POST");
		return;
	} else if (req->body_len > 0) {
		response_set(resp, 400, "GET with a body");
		return;
	} else if (access == ENROLL_ACCESS_TOKEN &&
	    query_token(req->query, tok) == -1) {
		response_set(resp, 403, "enrollment token required");
		return;
	}
	/* A challenge of its own for this profile, when so configured. */
	if (srv->enroll->conf->scep_challenge_issued) {
		if (enroll_token_new(chal) == -1) {
			response_set(resp, 500, "no random bytes");
			goto out;
		}
		op.issue = 1;
		sha256(chal, ENROLL_TOKEN_LEN, op.chal.hash);
		op.chal.has_hash = 1;
		op.chal.purpose = (char *)(uintptr_t)STORE_TOKEN_SCEP;
	}
	if (enroll_profile_signed_with(srv->enroll, cn,
		op.issue ? chal : NULL, &der, &derlen) == -1) {
		response_set(resp, 500, "cannot make the profile");
		goto out;
	}
	if (cn != NULL) {
		/* MachineInfo as Apple sent it, committed before the answer. */
		memset(&sm, 0, sizeof(sm));
		sm.udid = (char *)(uintptr_t)mi.udid;
		sm.serial = (char *)(uintptr_t)mi.serial;
		sm.product = (char *)(uintptr_t)mi.product;
		sm.version = (char *)(uintptr_t)mi.version;
		sm.imei = (char *)(uintptr_t)mi.imei;
		sm.meid = (char *)(uintptr_t)mi.meid;
		sm.language = (char *)(uintptr_t)mi.language;
		op.mi = &sm;
	} else if (access == ENROLL_ACCESS_TOKEN) {
		op.use_token = 1;
		sha256(tok, ENROLL_TOKEN_LEN, op.hash);
		explicit_bzero(tok, sizeof(tok));
	}
	if (op.use_token || op.mi != NULL || op.issue) {
		rc = store_write(srv->store, enroll_op_run, &op);
		if (rc != 0) {
			response_store_result(resp, rc,
			    "enrollment token unknown, used or expired");
			goto out;
		}
	}
	if (op.mi != NULL)
		log_info("enroll: MachineInfo stored udid=%s serial=%s "
			 "product=%s version=%s",
		    mi.udid, mi.serial ? mi.serial : "-",
		    mi.product ? mi.product : "-",
		    mi.version ? mi.version : "-");
	if (op.use_token)
		log_info("enroll: one-time token used");
	resp->status = 200;
	resp->content_type = PROFILE_TYPE;
	resp->body = der;
	resp->body_len = derlen;
	der = NULL;
out:
	explicit_bzero(chal, sizeof(chal));
	if (der != NULL)
		freezero(der, derlen);
	enroll_machineinfo_free(&mi);
}
