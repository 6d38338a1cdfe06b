#!/bin/sh
# Download Debian packages and unpack them (no install) into DEST.
# Used by CMake when a native dependency's headers/static library are not on
# the system: nothing is installed system-wide, the files live in the build tree.
# usage: fetch_deb.sh DEST SUITE PACKAGE...
set -eu
dest=$1; suite=$2; shift 2
work="$dest/.apt"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$dest"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
if [ ! -f "$keyring" ]; then
  echo "fetch_deb.sh: $keyring is missing (apt-get install debian-archive-keyring)" >&2
  exit 1
fi
echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite main" > "$work/sources.list"
opts="-o Dir::Etc::SourceList=$work/sources.list -o Dir::Etc::SourceParts=/dev/null \
 -o Dir::State::Lists=$work/lists -o Dir::Cache=$work/cache -o Debug::NoLocking=1 \
 -o APT::Sandbox::User=root -qq"
apt-get $opts update >&2
cd "$work"
for pkg in "$@"; do
  apt-get $opts download "$pkg" >&2
done
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$dest"
done
