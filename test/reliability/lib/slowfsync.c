/*
 * LD_PRELOAD shim for the slow-disk group: makes fsync, fdatasync, syncfs and sync_file_range take
 * HOSTVOL_TEST_FSYNC_DELAY_MS longer, like a disk whose cache flush is slow, then does the real call
 * (so the data is still durable). With HOSTVOL_TEST_FSYNC_PATH set, only fds whose path (read from
 * /proc/self/fd/N) starts with it are delayed, e.g. the state directory and not the log file.
 * Each delayed call adds one to a counter file HOSTVOL_TEST_FSYNC_COUNT (if set) so the test can
 * prove the shim was really loaded and really hit the store.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int matches(int fd) {
  const char *pattern = getenv("HOSTVOL_TEST_FSYNC_PATH");
  if (pattern == NULL || *pattern == '\0') return 1;
  char link[64], target[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return 0;
  target[n] = '\0';
  return strncmp(target, pattern, strlen(pattern)) == 0;
}

static void delay(int fd) {
  const char *ms = getenv("HOSTVOL_TEST_FSYNC_DELAY_MS");
  long d = ms ? atol(ms) : 0;
  if (d <= 0 || !matches(fd)) return;
  const char *count = getenv("HOSTVOL_TEST_FSYNC_COUNT");
  if (count != NULL && *count != '\0') {
    /* O_APPEND writes of one byte are atomic, so concurrent threads never lose a count. */
    int c = open(count, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (c >= 0) {
      (void)!write(c, ".", 1);
      close(c);
    }
  }
  struct timespec t = {d / 1000, (d % 1000) * 1000000L};
  while (nanosleep(&t, &t) != 0) {
  }
}

#define REAL(name, ret, ...) \
  static ret (*real)(__VA_ARGS__); \
  if (real == NULL) *(void **)&real = dlsym(RTLD_NEXT, name)

int fsync(int fd) {
  REAL("fsync", int, int);
  delay(fd);
  return real(fd);
}

int fdatasync(int fd) {
  REAL("fdatasync", int, int);
  delay(fd);
  return real(fd);
}

int syncfs(int fd) {
  REAL("syncfs", int, int);
  delay(fd);
  return real(fd);
}

int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags) {
  REAL("sync_file_range", int, int, off_t, off_t, unsigned int);
  delay(fd);
  return real(fd, offset, nbytes, flags);
}
