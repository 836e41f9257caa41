/* secprobe: tries, from inside a container, what a container must not be able to do, and
 * prints one line per attempt: "<what>: ok" or "<what>: <strerror>". Built statically by
 * cli/tests/security.rs and put into the test image. Every attempt is harmless when it
 * succeeds (it reads or writes back what is already there), so a hole shows as "ok" without
 * doing damage.
 *
 *   secprobe keyctl                 keyctl(KEYCTL_JOIN_SESSION_KEYRING), add_key, request_key
 *   secprobe ptrace-child           fork a child, PTRACE_ATTACH it
 *   secprobe ptrace PID             PTRACE_ATTACH PID
 *   secprobe finit-module FILE      finit_module(FILE) (no module: ENOEXEC if it were allowed)
 *   secprobe connect SOCKET         connect to a unix socket, send GET /_ping, print the reply
 *   secprobe exe-watch SECONDS      watch /proc for processes whose /proc/PID/exe is not one of
 *                                   ours; keep a read-only fd of each, and try to reopen it for
 *                                   writing and write back its first byte
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void report(const char *what, long r) {
    if (r < 0)
        printf("%s: %s\n", what, strerror(errno));
    else
        printf("%s: ok\n", what);
    fflush(stdout);
}

static int keys(void) {
    /* a new anonymous session keyring first, so that a key added goes with this process */
    report("keyctl", syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, NULL));
    report("add_key", syscall(SYS_add_key, "user", "berth-probe", "x", 1, -3));
    report("request_key", syscall(SYS_request_key, "user", "berth-probe", NULL, 0));
    return 0;
}

static int ptrace_child(void) {
    pid_t pid = fork();
    if (pid == 0) {
        pause();
        _exit(0);
    }
    long r = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
    report("ptrace-child", r);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 0;
}

static int ptrace_pid(const char *pid) {
    long r = ptrace(PTRACE_ATTACH, atoi(pid), NULL, NULL);
    report("ptrace", r);
    if (r == 0)
        ptrace(PTRACE_DETACH, atoi(pid), NULL, NULL);
    return 0;
}

static int finit_module(const char *file) {
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        report("open", -1);
        return 1;
    }
    report("finit_module", syscall(SYS_finit_module, fd, "", 0));
    report("init_module", syscall(SYS_init_module, "", 0, ""));
    return 0;
}

static int connect_unix(const char *path) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    long r = connect(s, (struct sockaddr *)&a, sizeof a);
    report("connect", r);
    if (r < 0)
        return 0;
    const char *req = "GET /_ping HTTP/1.0\r\nHost: x\r\n\r\n";
    if (write(s, req, strlen(req)) < 0)
        return 1;
    char buf[512];
    ssize_t n = read(s, buf, sizeof buf - 1);
    if (n > 0) {
        buf[n] = 0;
        char *eol = strchr(buf, '\r');
        if (eol)
            *eol = 0;
        printf("reply: %s\n", buf);
    }
    return 0;
}

#define MAX_FDS 512
static struct {
    int fd;
    int pid;
} held[MAX_FDS];
static int nheld;

static int same_file(const struct stat *a, const struct stat *b) {
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static int exe_watch(const char *secs) {
    struct stat self, bb;
    stat("/proc/self/exe", &self);
    stat("/bin/busybox", &bb);
    time_t end = time(NULL) + atoi(secs);
    int seen = 0, holes = 0;
    printf("watching\n");
    fflush(stdout);
    while (time(NULL) < end) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 0 || pid == getpid())
                continue;
            char p[64];
            snprintf(p, sizeof p, "/proc/%d/exe", pid);
            int fd = open(p, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            struct stat st;
            if (fstat(fd, &st) < 0 || same_file(&st, &self) || same_file(&st, &bb) ||
                nheld >= MAX_FDS) {
                close(fd);
                continue;
            }
            int dup_ = 0;
            for (int i = 0; i < nheld; i++) {
                struct stat o;
                if (fstat(held[i].fd, &o) == 0 && same_file(&o, &st))
                    dup_ = 1;
            }
            if (dup_) {
                close(fd);
                continue;
            }
            held[nheld].fd = fd;
            held[nheld].pid = pid;
            nheld++;
            seen++;
        }
        if (d)
            closedir(d);
        /* the attack of CVE-2019-5736: once the process is gone, reopen for writing */
        for (int i = 0; i < nheld; i++) {
            if (held[i].fd < 0)
                continue;
            char p[64];
            snprintf(p, sizeof p, "/proc/self/fd/%d", held[i].fd);
            int w = open(p, O_WRONLY | O_CLOEXEC);
            if (w < 0)
                continue;
            unsigned char c;
            if (pread(held[i].fd, &c, 1, 0) == 1 && pwrite(w, &c, 1, 0) == 1) {
                printf("HOLE: wrote to the executable of pid %d\n", held[i].pid);
                fflush(stdout);
                holes++;
                close(held[i].fd);
                held[i].fd = -1;
            }
            close(w);
        }
        sched_yield();
    }
    printf("foreign executables seen: %d, written: %d\n", seen, holes);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "keyctl"))
        return keys();
    if (argc >= 2 && !strcmp(argv[1], "ptrace-child"))
        return ptrace_child();
    if (argc >= 3 && !strcmp(argv[1], "ptrace"))
        return ptrace_pid(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "finit-module"))
        return finit_module(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "connect"))
        return connect_unix(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "exe-watch"))
        return exe_watch(argv[2]);
    fprintf(stderr, "usage: secprobe keyctl|ptrace-child|ptrace PID|finit-module FILE|"
                    "connect SOCKET|exe-watch SECONDS\n");
    return 2;
}
