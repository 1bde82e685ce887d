// SPDX-License-Identifier: MIT
/*
 * sluicectl — operate a running sluiced through its admin endpoint, and
 * check config files without one.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "userspace/admin.h"
#include "userspace/config.h"
#include "userspace/tlsctx.h"
#include "userspace/ebpf.h"

#define DEFAULT_ADMIN "127.0.0.1:9901"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sluicectl [-a HOST:PORT | -c FILE] [--token-file FILE] COMMAND\n"
		"  -a HOST:PORT  admin endpoint (default $SLUICE_ADMIN or " DEFAULT_ADMIN ")\n"
		"  -c FILE       take the admin endpoint (and admin.token_file) from this config file\n"
		"  -T, --token-file FILE  the admin bearer token (default $SLUICE_ADMIN_TOKEN_FILE,\n"
		"                or admin.token_file of -c FILE)\n"
		"commands:\n"
		"  status        listeners, pools and backends of the running daemon\n"
		"  status-json   the same as JSON\n"
		"  metrics       the Prometheus metrics\n"
		"  backends      the backends: state, connections, limits, connects, failures\n"
		"  fleet         the fleet: mode, hosts, heartbeat ages, config digests, and each\n"
		"                backend's totals, every host's ledger, demand and part\n"
		"  set BACKEND [rate=N] [max_conns=N]  limits in force until the next reload\n"
		"  reload        reload the daemon's config (SIGHUP) and say how it went\n"
		"  drain BACKEND   no new clients for it, its connections closed over drain.period_s\n"
		"  enable BACKEND  back in rotation after a drain (BACKEND: server name or address)\n"
		"  check FILE    validate a config file (exit 0 valid, 1 not); no daemon needed\n"
		"  bpf [PIN_PATH]  the kernel's ledger, buckets and SYN gates, read from the\n"
		"                pinned maps (bpf.pin_path of -c FILE, or /sys/fs/bpf/sluice);\n"
		"                works with sluiced stopped\n");
}

static int check(const char *path)
{
	char *errors = NULL;
	struct sl_config *cfg = config_load(path, &errors);

	if (cfg && tlsctx_check(cfg, &errors)) {
		config_free(cfg);
		cfg = NULL;
	}
	if (!cfg) {
		fputs(errors ? errors : "cannot load\n", stderr);
		free(errors);
		return 1;
	}
	printf("%s: configuration is valid (%u listeners, %u pools, %u workers)\n", path,
	       cfg->nlisteners, cfg->npools, cfg->workers);
	config_free(cfg);
	return 0;
}

static int request(const struct cfg_addr *addr, const char *method, const char *path,
		   const char *token)
{
	char *body = NULL;
	int status = admin_request(addr, method, path, token, &body, 3000);

	if (status < 0) {
		fprintf(stderr, "sluicectl: %s: %s\n", addr->text, strerror(-status));
		return 1;
	}
	if (status == 401) {
		fprintf(stderr, "sluicectl: %s: %s (give the admin token with --token-file or "
			"SLUICE_ADMIN_TOKEN_FILE)\n", addr->text,
			token ? "the token was refused" : "a token is required");
		free(body);
		return 1;
	}
	fputs(body, status == 200 ? stdout : stderr);
	free(body);
	return status == 200 ? 0 : 1;
}

/* The token of PATH into TOKEN; 0, or 1 with the reason printed. */
static int read_token(const char *path, char *token, size_t len)
{
	char err[512];

	if (admin_token_read(path, token, len, NULL, err, sizeof(err)) == 0)
		return 0;
	fprintf(stderr, "sluicectl: %s\n", err);
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "token-file", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *admin = getenv("SLUICE_ADMIN"), *config = NULL, *cmd;
	const char *token_file = getenv("SLUICE_ADMIN_TOKEN_FILE");
	char path[256], drain_path[600], token[ADMIN_TOKEN_MAX] = "";
	struct cfg_addr addr;
	int opt, rc;

	if (token_file && !*token_file)
		token_file = NULL;
	while ((opt = getopt_long(argc, argv, "+a:c:T:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			admin = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'T':
			token_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	if (strcmp(cmd, "check") == 0) {
		if (optind + 1 != argc) {
			usage(stderr);
			return 2;
		}
		return check(argv[optind]);
	}
	if (strcmp(cmd, "bpf") == 0) {
		const char *pin = "/sys/fs/bpf/sluice";
		struct sl_config *cfg = NULL;
		int ret;

		if (optind + 1 < argc) {
			usage(stderr);
			return 2;
		}
		if (optind < argc) {
			pin = argv[optind];
		} else if (config) {
			char *errors = NULL;

			cfg = config_load(config, &errors);
			if (!cfg) {
				fputs(errors ? errors : "cannot load\n", stderr);
				free(errors);
				return 1;
			}
			pin = cfg->bpf.pin_path;
		}
		ret = ebpf_dump(pin, stdout);
		if (ret)
			fprintf(stderr, "sluicectl: %s: %s (is this bpf.pin_path, and is sluiced's "
				"state pinned there?)\n", pin, strerror(-ret));
		config_free(cfg);
		return ret ? 1 : 0;
	}
	if (strcmp(cmd, "set") == 0) {
		size_t n;

		if (optind + 2 > argc || optind + 3 < argc || strlen(argv[optind]) > 128 ||
		    strpbrk(argv[optind], " ?&#/%")) {
			usage(stderr);
			return 2;
		}
		n = (size_t)snprintf(path, sizeof(path), "/set?backend=%s", argv[optind]);
		for (int i = optind + 1; i < argc; i++) {
			if ((strncmp(argv[i], "rate=", 5) && strncmp(argv[i], "max_conns=", 10)) ||
			    strpbrk(argv[i], " ?&#/%") || n + strlen(argv[i]) + 2 > sizeof(path)) {
				fprintf(stderr, "sluicectl: set: want rate=N or max_conns=N, not \"%s\"\n",
					argv[i]);
				return 2;
			}
			n += (size_t)snprintf(path + n, sizeof(path) - n, "&%s", argv[i]);
		}
		optind = argc;
		cmd = path;
	} else if (strcmp(cmd, "reload") == 0 && optind == argc) {
		cmd = "/reload";
	}
	if (strcmp(cmd, "drain") == 0 || strcmp(cmd, "enable") == 0) {
		if (optind + 1 != argc || strlen(argv[optind]) > 128 ||
		    strpbrk(argv[optind], " ?&#/%")) {
			usage(stderr);
			return 2;
		}
		snprintf(drain_path, sizeof(drain_path), "/%s?backend=%s", cmd, argv[optind]);
		optind = argc;
		cmd = drain_path;
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (config) {
		char *errors = NULL;
		struct sl_config *cfg = config_load(config, &errors);

		if (!cfg) {
			fputs(errors ? errors : "cannot load\n", stderr);
			free(errors);
			return 1;
		}
		if (!cfg->admin.enabled) {
			fprintf(stderr, "sluicectl: %s has no admin endpoint\n", config);
			config_free(cfg);
			return 1;
		}
		addr = cfg->admin.addr;
		/* the config's token file, unless one was named: read now, cfg goes */
		if (!token_file && cfg->admin.token_file[0] &&
		    read_token(cfg->admin.token_file, token, sizeof(token))) {
			config_free(cfg);
			return 1;
		}
		config_free(cfg);
	} else if (config_parse_addr(admin ? admin : DEFAULT_ADMIN, &addr)) {
		fprintf(stderr, "sluicectl: bad admin address \"%s\"\n", admin);
		return 2;
	}
	if (token_file && read_token(token_file, token, sizeof(token)))
		return 1;
	if (cmd[0] == '/')
		rc = request(&addr, "POST", cmd, token[0] ? token : NULL);
	else if (strcmp(cmd, "status") == 0)
		rc = request(&addr, "GET", "/status.txt", token[0] ? token : NULL);
	else if (strcmp(cmd, "status-json") == 0)
		rc = request(&addr, "GET", "/status.json", token[0] ? token : NULL);
	else if (strcmp(cmd, "metrics") == 0)
		rc = request(&addr, "GET", "/metrics", token[0] ? token : NULL);
	else if (strcmp(cmd, "backends") == 0)
		rc = request(&addr, "GET", "/backends.txt", token[0] ? token : NULL);
	else if (strcmp(cmd, "fleet") == 0)
		rc = request(&addr, "GET", "/fleet.txt", token[0] ? token : NULL);
	else {
		fprintf(stderr, "sluicectl: unknown command \"%s\"\n", cmd);
		usage(stderr);
		rc = 2;
	}
	explicit_bzero(token, sizeof(token));
	return rc;
}
