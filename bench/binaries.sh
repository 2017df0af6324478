# Sourced by the bench scripts that measure the peak memory of a binary.

# The kernel maps a binary's code in windows around each page a run touches, within the folios
# in which the page cache holds the file, so a run's peak memory depends on how the file got
# into the cache: as the linker or cp wrote it, or read from disk as on a node that pulled the
# image. The same binary measured both ways differs by up to 0.4 MiB. Written back and dropped
# from the cache, every binary measured starts the second way, and figures compare across builds.
read_from_disk_next() {
  sync "$@"
  local file
  for file; do dd if="$file" iflag=nocache count=0 status=none; done
}

# The peak memory (max RSS) in KiB of one run of a shell command, its output discarded.
peak_rss_kib() {
  local rss
  rss=$(mktemp)
  /usr/bin/time -f %M -o "$rss" sh -c "$1" >/dev/null
  cat "$rss"
  rm -f "$rss"
}
