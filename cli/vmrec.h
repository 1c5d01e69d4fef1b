/* vmrec.h - what the operator verbs (console, logs, inspect) need of one
 * recorded VM: its record, its typed spec and its runtime paths. */
#ifndef MQ_CLI_VMREC_H
#define MQ_CLI_VMREC_H

#include "cli/cli.h"
#include "reconciler/vmpaths.h"

struct mq_cli_vm {
	struct mq_vm_record *rec;
	struct mq_spec *spec;    /* rebuilt from rec->spec_json */
	struct mq_vm_paths paths;
};

/* Open the existing store and load vm `name`.  `verb` names the failure:
 * "cannot <verb> vm 'NAME': no such vm".  Returns 0, or MQ_EXIT_FAILURE after
 * printing. */
int mq_cli_vm_load(struct mq_cli *cli, const char *name, const char *verb, struct mq_cli_vm *vm);
void mq_cli_vm_release(struct mq_cli_vm *vm);

#endif
