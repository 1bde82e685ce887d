/* SPDX-License-Identifier: MIT */
/*
 * config — sluice's configuration: a libconfig file parsed and validated into
 * an immutable struct sl_config. Pure data: nothing here opens sockets or
 * touches the kernel, so `sluiced -t` and `sluicectl check` use it as is and
 * the daemon builds its runtime snapshot from it.
 *
 * Every error names the file, the line and the setting:
 *     FILE:LINE: SETTING: message
 * where SETTING is a path such as `pools[0].servers[1].address`.
 * Unknown keys are errors. libconfig types stay inside config.c.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdint.h>
#include <sys/socket.h>

#define CFG_NAME_MAX 64
#define CFG_MAX_WORKERS 64
#define CFG_MAX_LISTENERS 256
#define CFG_MAX_POOLS 256
#define CFG_MAX_SERVERS 1024 /* per pool */
#define CFG_PATH_MAX 256
#define CFG_MAX_SOURCES 6
#define CFG_MAX_SENTINELS 8
#define CFG_MAX_IFACES 8
#define CFG_IFNAME_MAX 16
#define CFG_USER_MAX 33 /* a user or group name: 32 characters */

enum cfg_mode {
	CFG_MODE_TCP = 0,
	CFG_MODE_HTTP, /* read the request head first: WebSocket upgrades, 503 + Retry-After */
};

enum cfg_balance {
	CFG_BAL_LEAST_CONN = 0,
	CFG_BAL_ROUND_ROBIN,
};

/* The values of enum pp_version (proxy/proxyproto.h). */
enum cfg_proxy_protocol {
	CFG_PP_OFF = 0,
	CFG_PP_V1 = 1,
	CFG_PP_V2 = 2,
};

struct cfg_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[80]; /* normalised: "1.2.3.4:80" or "[::1]:80" */
};

#define CFG_MAX_CERTS 16
#define CFG_MAX_ALPN 8
#define CFG_ALPN_MAX 32
#define CFG_HOST_MAX 256
#define CFG_CIPHERS_MAX 512

struct cfg_cert {
	char cert[CFG_PATH_MAX]; /* PEM: the certificate, then its chain */
	char key[CFG_PATH_MAX];  /* PEM private key; default: the cert file */
	char ocsp[CFG_PATH_MAX]; /* DER OCSP response stapled when asked; "": none */
	int line;
};

enum cfg_tls_version { CFG_TLS12 = 0x0303, CFG_TLS13 = 0x0304 };

/* TLS on a listener: termination, resumption, handshake admission. */
struct cfg_tls {
	int enabled;                         /* the group is present */
	struct cfg_cert *certs;              /* chosen by SNI, then by key type */
	unsigned ncerts;
	char alpn[CFG_MAX_ALPN][CFG_ALPN_MAX]; /* in preference order; default "http/1.1" */
	unsigned nalpn;
	int min_version;                     /* enum cfg_tls_version; default 1.2 */
	char ciphers[CFG_CIPHERS_MAX];       /* TLS 1.2 list; "": sluice's defaults */
	char ciphersuites[CFG_CIPHERS_MAX];  /* TLS 1.3 list; "": OpenSSL's defaults */
	char ticket_keys[CFG_PATH_MAX];      /* "": random keys for this process */
	uint32_t session_cache;              /* TLS 1.2 session-id cache entries; default 20000 */
	uint32_t full_per_s, full_burst;     /* full handshakes; 0: no limit */
	uint32_t resumed_per_s, resumed_burst; /* handshakes that try to resume; 0: no limit */
	int full_auto, resumed_auto;         /* "auto": learned from sluice's own handshake
					      * latency (proxy/learn.c); *_per_s is the start */
	uint32_t queue_max;                  /* clients waiting for a handshake token; default 1000 */
};

/* TLS from sluice to a pool's backends. */
struct cfg_backend_tls {
	int enabled;
	int verify;                  /* default 1 */
	char ca_file[CFG_PATH_MAX];  /* "": the system's CAs */
	char sni[CFG_HOST_MAX];      /* server name sent and verified; "": none, the IP is verified */
};

struct cfg_server {
	char name[CFG_NAME_MAX]; /* "name", default: the address text */
	struct cfg_addr addr;
	uint32_t max_conns; /* concurrent connections, 0: no limit (kernel-enforced) */
	/*
	 * New connections per second, 0: no limit (kernel-enforced). With
	 * rate_auto ("auto"), sluice learns it within [rate_min, rate_max]
	 * (proxy/ratectl.h) and `rate` is where learning starts.
	 */
	uint32_t rate;
	int rate_auto;
	int rate_default;            /* no "rate" given: auto, where BPF can enforce it */
	uint32_t rate_min, rate_max; /* auto: default 10, 1000000 */
	uint32_t burst;     /* default: rate / 10, at least 1 (auto: of the rate in force) */
	int burst_set;      /* "burst" was given */
	struct {
		int enabled;          /* the group is present */
		uint32_t port;        /* the agent's TCP port on the server's address */
		uint32_t interval_ms; /* default 2000 */
	} agent;
	int line;
};

enum cfg_queue_order {
	CFG_QO_FIFO,
	CFG_QO_ADAPTIVE,
};

struct cfg_pool {
	char name[CFG_NAME_MAX];
	enum cfg_balance balance;
	uint32_t retries; /* further backends tried after a failed connect */
	enum cfg_proxy_protocol proxy_protocol; /* header sent first to the backend; default off */
	struct {
		uint32_t max;        /* clients waiting for a slot or token, all workers; default 10000 */
		/*
		 * Longest wait; default 10000. timeout_auto ("auto"): the
		 * clients' patience, learned (proxy/patience.h), is the limit,
		 * and timeout_ms only where nothing is learned yet.
		 */
		uint32_t timeout_ms;
		int timeout_auto;
		/*
		 * Which waiter goes next: "fifo" (the oldest) or "adaptive"
		 * (the oldest until the oldest has waited QUEUE_CONGESTED_MS,
		 * then the newest: proxy/admit.c). Default adaptive.
		 */
		enum cfg_queue_order order;
	} queue;
	struct {
		uint32_t min_s, max_s;   /* Retry-After is clamped to these; default 1, 120 */
		uint32_t jitter_permille; /* "jitter" 0.0..1.0 as 1/1000; default 500 */
	} retry_after;
	struct {
		int enabled;          /* active checks: the group is present */
		uint32_t interval_ms; /* default 2000 (each check jittered by up to 10%) */
		uint32_t timeout_ms;  /* default 1000 */
		uint32_t rise, fall;  /* default 2, 3; fall also counts failed client connects */
		char http_path[CFG_PATH_MAX]; /* "": a TCP connect is the check */
	} health;
	uint32_t slow_start_s; /* ramp of rate and max_conns after a backend comes up; 0: none */
	struct {
		int enabled;          /* the group is present */
		uint32_t interval_ms; /* default 10000 */
		uint32_t timeout_ms;  /* default 2000 */
		char send[CFG_PATH_MAX];   /* bytes sent through the listener (libconfig escapes: \r \n \t) */
		char expect[CFG_PATH_MAX]; /* what must come back within timeout_ms */
	} synthetic;
	struct cfg_backend_tls tls;
	uint32_t starved_after_s; /* flag a backend given no new connection this long while
				     its peers were (sluice_backend_starved); default 60, 0: off */
	struct cfg_server *servers;
	unsigned nservers;
	/*
	 * Local addresses to connect to backends from ("source"), each
	 * giving every backend its own ephemeral port range; port 0 in
	 * each. None: the kernel's choice of one address.
	 */
	struct cfg_addr sources[CFG_MAX_SOURCES];
	unsigned nsources;
	int line;
};

/* XDP SYN gate of a listener: a bucket for all its SYNs, one per source prefix. */
struct cfg_syn_gate {
	int enabled;  /* the group is present */
	uint32_t rate, burst;          /* SYNs per second for the listener; burst default: rate */
	uint32_t source_prefix_v4;     /* default 24 */
	uint32_t source_prefix_v6;     /* default 56 */
	uint32_t source_rate;          /* per prefix; 0: no per-source limit */
	uint32_t source_burst;         /* default: source_rate */
	char interfaces[CFG_MAX_IFACES][CFG_IFNAME_MAX];
	unsigned ninterfaces;
};

struct cfg_listener {
	char name[CFG_NAME_MAX];
	struct cfg_addr addr;
	enum cfg_mode mode;
	unsigned pool; /* index into sl_config.pools */
	uint32_t backlog;
	struct cfg_syn_gate syn_gate;
	struct cfg_tls tls;
	int line;
};

struct sl_config {
	char *path;
	unsigned workers; /* resolved: the file's value, or one per online CPU */
	/*
	 * Who sluiced runs as once started (see proxy/privs.h). Names only:
	 * they are looked up when the daemon starts, not here. "": stay as
	 * started. group "" with a user: the user's primary group.
	 */
	char user[CFG_USER_MAX];
	char group[CFG_USER_MAX];
	struct {
		int level;                   /* enum log_level; default info */
		int syslog;                  /* to syslog instead of stderr */
		char access[CFG_PATH_MAX];   /* access log file; "": none */
	} log;
	struct {
		int enabled;                 /* default 1 */
		char pin_path[CFG_PATH_MAX]; /* bpffs directory; default /sys/fs/bpf/sluice */
		char cgroup[CFG_PATH_MAX];   /* under the cgroup v2 mount; default "sluice" */
	} bpf;
	struct {
		int enabled; /* 0 when admin.address = "" */
		struct cfg_addr addr;
		/* a file holding the bearer token every request but /healthz must
		   carry; "": no token asked (read by the daemon, not here) */
		char token_file[CFG_PATH_MAX];
	} admin;
	struct {
		uint32_t connect_ms;      /* one backend connect attempt */
		uint32_t idle_s;          /* no byte either way */
		uint32_t backend_wait_ms; /* hard cap: accept until backend connected */
		uint32_t head_ms;         /* mode http: the request head must arrive within this */
		uint32_t handshake_ms;    /* TLS: accept until the handshake is done, queue included */
		uint32_t send_stall_ms;   /* a sink that takes no byte for this long: closed */
	} timeouts;
	struct {
		uint32_t period_s;
		uint32_t grace_s; /* SIGTERM: connections may finish for this long */
	} drain;
	struct {
		uint32_t count; /* provided buffers per worker, power of two */
		uint32_t size;  /* bytes per buffer */
	} buffers;
	/*
	 * A fleet of sluice hosts sharing backend limits through Redis
	 * (proxy/fleet.h): with it, a server's max_conns, rate and burst are
	 * the backend's totals across every host whose prefix is the same.
	 */
	struct {
		int enabled;                       /* the group is present */
		struct cfg_addr redis;             /* resolved at load: no DNS on the main loop */
		char host[CFG_NAME_MAX];           /* this host's name; default: the hostname */
		char prefix[CFG_NAME_MAX];         /* key prefix: one fleet per prefix; "sluice" */
		uint32_t database;                 /* SELECT; default 0 */
		char password_file[CFG_PATH_MAX];  /* AUTH with its first line; "": none */
		uint32_t heartbeat_ms;             /* publish and read every; default 300 */
		uint32_t lease_ms;                 /* Redis gone: last shares kept; default 3000 */
		uint32_t hosts;                    /* hosts assumed before Redis answers; default 2 */
		struct cfg_addr sentinels[CFG_MAX_SENTINELS]; /* ask these where the master is */
		unsigned nsentinels;
		char master[CFG_NAME_MAX];         /* the master's name at the sentinels */
		struct cfg_redis_tls {
			int enabled;               /* the group is present: TLS to Redis and sentinels */
			char ca[CFG_PATH_MAX];     /* CA certificates to verify them ("": the system's) */
			char name[256];            /* the name their certificate carries ("": the address) */
			char cert[CFG_PATH_MAX];   /* client certificate and key, both or neither */
			char key[CFG_PATH_MAX];
		} tls;
	} fleet;
	struct cfg_listener *listeners;
	unsigned nlisteners;
	struct cfg_pool *pools;
	unsigned npools;
};

/*
 * Parse and validate PATH. On success returns a new config (free with
 * config_free) and sets *errors to NULL. On failure returns NULL and, when
 * ERRORS is not NULL, sets *errors to a malloc'd text of one or more lines,
 * each "FILE:LINE: SETTING: message\n" (caller frees); errno is EINVAL for a
 * bad file, or the errno of a failed read.
 */
struct sl_config *config_load(const char *path, char **errors);

/* Same as config_load, from a string; NAME stands for the file in messages. */
struct sl_config *config_load_string(const char *text, const char *name, char **errors);

/* Release a config; NULL is fine. */
void config_free(struct sl_config *cfg);

/* Look up a pool or listener by name; -1 when absent. */
int config_pool_index(const struct sl_config *cfg, const char *name);
int config_listener_index(const struct sl_config *cfg, const char *name);

/*
 * Parse "HOST:PORT" (IPv4, "[IPv6]" or a resolvable name) into ADDR.
 * Returns 0 or -EINVAL / -ENOENT (name does not resolve).
 */
int config_parse_addr(const char *text, struct cfg_addr *addr);

#endif
