/* TLS for the HTTP front end: certificates camd owns and hands to GnuTLS per handshake, so that
 * SIGHUP can replace them without stopping the listener.
 *
 * libmicrohttpd 0.9.75 (GnuTLS) takes either the certificate and key as PEM text at start
 * (MHD_OPTION_HTTPS_MEM_CERT/KEY: fixed for the daemon's life) or a certificate callback
 * (MHD_OPTION_HTTPS_CERT_CALLBACK, gnutls_certificate_retrieve_function2). camd uses the callback:
 * every handshake asks camd__tls_cert_cb for the current generation of credentials (certificate
 * chain, private key, and the client CA list when tls_ca is set). camd__tls_reload builds a new
 * generation from the files and makes it current; older generations stay allocated until the
 * server stops (sessions may still refer to them; a reload costs a few KiB).
 *
 * Mutual TLS: MHD's own MHD_OPTION_HTTPS_MEM_TRUST only *requests* a client certificate and does
 * not verify it. With tls_ca, the callback instead marks the session GNUTLS_CERT_REQUIRE and
 * installs a verify function that checks the client's chain against the current generation's CA
 * list (purpose TLS client): a client without a valid certificate fails the handshake.
 * Versions: TLS 1.2 and 1.3 only (MHD_OPTION_HTTPS_PRIORITIES, CAMD__TLS_PRIORITIES). */
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "server/http_internal.h"

#define MAX_CHAIN 16

typedef struct tls_gen {
  gnutls_pcert_st pcerts[MAX_CHAIN];
  unsigned n_pcerts;
  gnutls_privkey_t key;
  gnutls_x509_trust_list_t trust; /* NULL: no client certificates */
  struct tls_gen *older;
} tls_gen;

static struct {
  pthread_mutex_t mu;
  tls_gen *current; /* newest first, linked through older */
  char cert[4096], key[4096], ca[4096];
} tls = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void gen_free(tls_gen *g) {
  if (!g) return;
  for (unsigned i = 0; i < g->n_pcerts; i++) gnutls_pcert_deinit(&g->pcerts[i]);
  if (g->key) gnutls_privkey_deinit(g->key);
  if (g->trust) gnutls_x509_trust_list_deinit(g->trust, 1);
  free(g);
}

static int tls_fail(camd_error *err, const char *what, const char *path, int gnutls_rc) {
  return camd_error_set(err, CAMD_E_INVALID, "%s '%s': %s", what, path,
                        gnutls_rc ? gnutls_strerror(gnutls_rc) : "no certificate in the file");
}

/* A generation from the configured files. */
static int gen_load(tls_gen **out, camd_error *err) {
  *out = NULL;
  tls_gen *g = calloc(1, sizeof(*g));
  if (!g) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  gnutls_datum_t d = {NULL, 0};
  int rc = gnutls_load_file(tls.cert, &d);
  if (rc < 0) {
    rc = tls_fail(err, "tls_cert: cannot read", tls.cert, rc);
    goto fail;
  }
  g->n_pcerts = MAX_CHAIN;
  rc = gnutls_pcert_list_import_x509_raw(g->pcerts, &g->n_pcerts, &d, GNUTLS_X509_FMT_PEM, 0);
  gnutls_free(d.data);
  if (rc < 0 || g->n_pcerts == 0) {
    g->n_pcerts = 0;
    rc = tls_fail(err, "tls_cert: no PEM certificate chain in", tls.cert, rc < 0 ? rc : 0);
    goto fail;
  }
  if ((rc = gnutls_load_file(tls.key, &d)) < 0) {
    rc = tls_fail(err, "tls_key: cannot read", tls.key, rc);
    goto fail;
  }
  if ((rc = gnutls_privkey_init(&g->key)) == 0)
    rc = gnutls_privkey_import_x509_raw(g->key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
  gnutls_free(d.data);
  if (rc < 0) {
    rc = tls_fail(err, "tls_key: no PEM private key in", tls.key, rc);
    goto fail;
  }
  /* The key must belong to the certificate: sign with one, verify with the other (RSA, ECDSA;
   * other key types are left to the handshake). */
  gnutls_datum_t probe = {(unsigned char *)"camd tls key check", 18}, sig = {NULL, 0};
  gnutls_sign_algorithm_t algo =
      gnutls_pk_to_sign(gnutls_privkey_get_pk_algorithm(g->key, NULL), GNUTLS_DIG_SHA256);
  rc = algo == GNUTLS_SIGN_UNKNOWN ? 0 : gnutls_privkey_sign_data2(g->key, algo, 0, &probe, &sig);
  if (rc == 0 && algo != GNUTLS_SIGN_UNKNOWN)
    rc = gnutls_pubkey_verify_data2(g->pcerts[0].pubkey, algo, 0, &probe, &sig);
  gnutls_free(sig.data);
  if (rc < 0) {
    rc = camd_error_set(err, CAMD_E_INVALID,
                        "tls_key '%s' does not belong to the certificate in tls_cert '%s'", tls.key,
                        tls.cert);
    goto fail;
  }
  if (tls.ca[0]) {
    if ((rc = gnutls_x509_trust_list_init(&g->trust, 0)) < 0) {
      rc = tls_fail(err, "tls_ca", tls.ca, rc);
      goto fail;
    }
    rc = gnutls_x509_trust_list_add_trust_file(g->trust, tls.ca, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
    if (rc <= 0) {
      rc = tls_fail(err, "tls_ca: no PEM CA certificate in", tls.ca, rc);
      goto fail;
    }
  }
  *out = g;
  return 0;
fail:
  gen_free(g);
  return rc;
}

/* The client's chain against the current CA list (the handshake fails when this is not 0). */
static int verify_client(gnutls_session_t s) {
  unsigned n = 0;
  const gnutls_datum_t *raw = gnutls_certificate_get_peers(s, &n);
  if (!raw || n == 0) return GNUTLS_E_NO_CERTIFICATE_FOUND;
  if (n > MAX_CHAIN) n = MAX_CHAIN;
  gnutls_x509_crt_t crts[MAX_CHAIN];
  unsigned got = 0;
  int rc = 0;
  for (; got < n; got++) {
    if (gnutls_x509_crt_init(&crts[got]) < 0) break;
    if (gnutls_x509_crt_import(crts[got], &raw[got], GNUTLS_X509_FMT_DER) < 0) {
      gnutls_x509_crt_deinit(crts[got]);
      break;
    }
  }
  if (got < n) {
    rc = GNUTLS_E_CERTIFICATE_ERROR;
  } else {
    pthread_mutex_lock(&tls.mu);
    gnutls_x509_trust_list_t trust = tls.current ? tls.current->trust : NULL;
    unsigned status = GNUTLS_CERT_INVALID;
    gnutls_typed_vdata_st purpose = {GNUTLS_DT_KEY_PURPOSE_OID,
                                     (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT, 0};
    if (trust) gnutls_x509_trust_list_verify_crt2(trust, crts, n, &purpose, 1, 0, &status, NULL);
    pthread_mutex_unlock(&tls.mu);
    if (status != 0) rc = GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
  }
  for (unsigned i = 0; i < got; i++) gnutls_x509_crt_deinit(crts[i]);
  return rc;
}

int camd__tls_cert_cb(gnutls_session_t s, const gnutls_datum_t *req_ca_dn, int nreqs,
                      const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                      gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey) {
  (void)req_ca_dn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
  pthread_mutex_lock(&tls.mu);
  tls_gen *g = tls.current;
  pthread_mutex_unlock(&tls.mu);
  if (!g) return -1;
  if (g->trust) {
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
    gnutls_session_set_verify_function(s, verify_client);
  }
  *pcert = g->pcerts;
  *pcert_length = g->n_pcerts;
  *pkey = g->key;
  return 0;
}

int camd__tls_init(const camd_server_config *cfg, camd_error *err) {
  if (!cfg->tls_cert[0] && !cfg->tls_key[0] && !cfg->tls_ca[0]) return 0;
  if (!cfg->tls_cert[0] || !cfg->tls_key[0]) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "TLS needs both tls_cert and tls_key (tls_ca alone is not enough)");
  }
  snprintf(tls.cert, sizeof(tls.cert), "%s", cfg->tls_cert);
  snprintf(tls.key, sizeof(tls.key), "%s", cfg->tls_key);
  snprintf(tls.ca, sizeof(tls.ca), "%s", cfg->tls_ca);
  tls_gen *g;
  int rc = gen_load(&g, err);
  if (rc) return rc;
  tls.current = g;
  return 0;
}

bool camd__tls_enabled(void) {
  return tls.current != NULL;
}

int camd__tls_reload(camd_error *err) {
  if (!tls.current) return 0;
  tls_gen *g;
  int rc = gen_load(&g, err);
  if (rc) return rc; /* the current generation stays */
  pthread_mutex_lock(&tls.mu);
  g->older = tls.current;
  tls.current = g;
  pthread_mutex_unlock(&tls.mu);
  return 0;
}

void camd__tls_free(void) {
  pthread_mutex_lock(&tls.mu);
  tls_gen *g = tls.current;
  tls.current = NULL;
  pthread_mutex_unlock(&tls.mu);
  while (g) {
    tls_gen *older = g->older;
    gen_free(g);
    g = older;
  }
}
