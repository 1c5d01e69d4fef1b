/* spawn1: run argv[1..] as a child and exit with its status -- the least
 * any command-line tool pays to run another program (one more exec and a
 * wait).  bench/snapshot-offline.sh times `spawn1 qemu-img snapshot ...` as
 * the floor a wrapper of qemu-img cannot go below.
 * Built by bench/lib.sh:  cc -O2 -o spawn1 bench/spawn1.c */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: spawn1 PROGRAM [ARG]...\n");
		return 2;
	}
	pid_t pid;
	int st;
	if (posix_spawn(&pid, argv[1], NULL, NULL, argv + 1, environ) != 0) {
		perror(argv[1]);
		return 127;
	}
	if (waitpid(pid, &st, 0) < 0)
		return 2;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
