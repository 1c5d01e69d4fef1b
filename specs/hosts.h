/* hosts.h - the host inventory: `hosts.yaml` at the top of a manifest
 * directory given with -f (README "More than one host").
 *
 *   hosts: [lab1, lab2]              # every host a vm may be placed on
 *   shared_storage: [/srv/vmdisks]   # directories every host sees as one
 *
 * hosts.yaml is not a vm manifest: the -f walk skips it.  Without one, any
 * host name in `placement` is accepted.
 */
#ifndef MQ_SPECS_HOSTS_H
#define MQ_SPECS_HOSTS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/strv.h"

#define MQ_HOSTS_FILE "hosts.yaml"

struct mq_hosts {
	struct mq_strv names;   /* `hosts`, in file order, no duplicates */
	struct mq_strv shared;  /* `shared_storage`: absolute, resolved directories */
	struct mq_strv files;   /* displayed names of the hosts.yaml files read */
};

/* Read the hosts.yaml at the top of every directory in paths (files are
 * skipped).  *out is NULL when there is none; several are merged.  Returns
 * 0, or -EINVAL with located diags appended to `diags` (*out untouched). */
int mq_hosts_load(const char *const *paths, size_t n_paths, struct mq_hosts **out, struct mq_strv *diags);
struct mq_hosts *mq_hosts_free(struct mq_hosts *h);
bool mq_hosts_has(const struct mq_hosts *h, const char *name);
/* The shared_storage directory that holds `abs_path`, or NULL. */
const char *mq_hosts_shared_dir(const struct mq_hosts *h, const char *abs_path);
/* A valid host name for --host and hosts.yaml: [A-Za-z0-9][A-Za-z0-9.-]{0,62}. */
bool mq_host_name_ok(const char *name);
/* "a, b, c" (at most 8 names, then "and N more"); caller frees. */
char *mq_hosts_list_text(const struct mq_hosts *h);

/* Internal to specs/: every vm's placement host must be in the inventory
 * (a located error with a did-you-mean otherwise); x (or NULL) gives the
 * positions of the placement values. */
struct mq_spec;
struct mq_spec_extra;
struct mq_diags;
int mq_hosts_read(const char *const *paths, size_t n_paths, struct mq_hosts **out, struct mq_diags *d);
void mq_hosts_check_specs(const struct mq_hosts *h, struct mq_spec **specs, struct mq_spec_extra **x, size_t n,
			  struct mq_diags *d);

#endif
