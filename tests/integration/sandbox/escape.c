/* Escape probes run inside a RUN step (compiled static by test_escape.py).
 * Usage: escape SYSCALL...  prints "NAME ERRNO" for each (0 = it worked).
 *        escape chroot PATH  tries the classic chroot escape, then reads PATH. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long probe(const char *name) {
    long r = -1;
    errno = 0;
    if (!strcmp(name, "mount")) r = mount("none", "/tmp", "tmpfs", 0, NULL);
    else if (!strcmp(name, "unshare")) r = unshare(CLONE_NEWNS);
    else if (!strcmp(name, "unshare-user")) r = unshare(CLONE_NEWUSER);
    else if (!strcmp(name, "clone-newuser")) {
        r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (r == 0) _exit(0);
        if (r > 0) { waitpid(r, NULL, 0); r = 0; }
    }
    else if (!strcmp(name, "keyctl")) r = syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3, 0);
    else if (!strcmp(name, "bpf")) r = syscall(SYS_bpf, 0, NULL, 0);
    else if (!strcmp(name, "kexec_load")) r = syscall(SYS_kexec_load, 0, 0, NULL, 0);
    else if (!strcmp(name, "init_module")) r = syscall(SYS_init_module, NULL, 0, "");
    else if (!strcmp(name, "setns")) r = setns(0, 0);
    else if (!strcmp(name, "pivot_root")) r = syscall(SYS_pivot_root, "/", "/");
    /* The family is an int: the kernel reads the low 32 bits, so high bits must not pass. */
    else if (!strcmp(name, "socket-vsock")) r = syscall(SYS_socket, 40UL, SOCK_STREAM, 0);
    else if (!strcmp(name, "socket-vsock-hi"))
        r = syscall(SYS_socket, (1UL << 32) | 40, SOCK_STREAM, 0);
    else if (!strcmp(name, "socket-inet")) r = syscall(SYS_socket, 2UL, SOCK_STREAM, 0);
    else if (!strcmp(name, "clone-newuser-hi")) {
        r = syscall(SYS_clone, (1UL << 32) | CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (r == 0) _exit(0);
        if (r > 0) { waitpid(r, NULL, 0); r = 0; }
    }
    else { fprintf(stderr, "unknown probe %s\n", name); return -2; }
    if (r >= 0 && !strncmp(name, "socket", 6)) close((int)r);
    return r < 0 ? errno : 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "chroot")) {
        mkdir("/tmp/jail", 0700);
        if (chroot("/tmp/jail") != 0) { printf("chroot %d\n", errno); }
        for (int i = 0; i < 64; i++) chdir("..");
        chroot(".");
        int fd = open(argv[2], O_RDONLY);
        printf("open %d\n", fd < 0 ? errno : 0);
        return 0;
    }
    for (int i = 1; i < argc; i++) printf("%s %ld\n", argv[i], probe(argv[i]));
    return 0;
}
