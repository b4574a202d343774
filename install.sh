#!/bin/sh
# outpost installer: picks the binary for this machine, verifies it against SHA256SUMS, installs
# it with a config and a service. Safe to run again (upgrades the binary, keeps the config).
#
#   sh install.sh --url https://releases.example.net/outpost/1.2.3 --node-name ship1 \
#      --server tcp://hub.example.net:7430 --token s3cret
#   sh install.sh --binary ./outpost-linux-arm64 ...   (SHA256SUMS beside it, or --sums FILE)
#   sh install.sh --uninstall                           (keeps the data directory)
set -eu

prefix=/opt/outpost
config_dir=/etc/outpost
data_dir=/var/lib/outpost
bin_dir=/usr/local/bin
url=
binary=
sums=
arch=
node_name=
transport=tcp
server=
token=
central=
service=yes
uninstall=no

usage() {
  cat <<'EOF'
Usage: install.sh [OPTIONS]

Where the binary comes from (one of):
  --url BASE          release folder holding SHA256SUMS and outpost-linux-<arch>
  --binary FILE       a binary already here; verified against SHA256SUMS beside it (or --sums)
  --sums FILE         the SHA256SUMS file to verify --binary against

Where it goes:
  --prefix DIR        install directory (default /opt/outpost)
  --config-dir DIR    config directory (default /etc/outpost); outpost.yaml is written only
                      when none exists
  --data-dir DIR      data directory written into a new config (default /var/lib/outpost)
  --bin-dir DIR       where the `outpost` command link goes (default /usr/local/bin; '' for none)
  --arch ARCH         x64, arm64 or ppc64le (default: detected with uname -m)

The config (only for a new outpost.yaml):
  --node-name NAME    this node's name (default: the host name)
  --transport KIND    tcp, mqtt or nats (default tcp)
  --server URL        server to connect to, e.g. tcp://hub.example.net:7430 (repeatable)
  --token TOKEN       this node's token at the hub
  --central NAME      the central node (default central)

Service:
  --no-service        do not install or start a systemd unit / init script
  --uninstall         stop and remove the service, binary, link and config; keep the data
  -h, --help          this help
EOF
}

say() { printf 'install.sh: %s\n' "$*"; }
# A YAML double-quoted string: backslashes and quotes escaped.
q() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

servers=
while [ $# -gt 0 ]; do
  opt=$1
  case $opt in
    -h|--help) usage; exit 0 ;;
    --no-service) service=no; shift; continue ;;
    --uninstall) uninstall=yes; shift; continue ;;
  esac
  [ $# -ge 2 ] || { usage >&2; die "$opt needs a value"; }
  val=$2
  case $opt in
    --url) url=${val%/} ;;
    --binary) binary=$val ;;
    --sums) sums=$val ;;
    --prefix) prefix=${val%/} ;;
    --config-dir) config_dir=${val%/} ;;
    --data-dir) data_dir=${val%/} ;;
    --bin-dir) bin_dir=${val%/} ;;
    --arch) arch=$val ;;
    --node-name) node_name=$val ;;
    --transport) transport=$val ;;
    --server) servers="${servers:+$servers, }$(q "$val")"; server=$val ;;
    --token) token=$val ;;
    --central) central=$val ;;
    *) usage >&2; die "unknown option $opt" ;;
  esac
  shift 2
done

has_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }
unit=/etc/systemd/system/outpost.service
initscript=/etc/init.d/outpost

stop_service() {
  if has_systemd && [ -f "$unit" ]; then
    systemctl disable --now outpost.service >/dev/null 2>&1 || true
  elif [ -x "$initscript" ]; then
    "$initscript" stop >/dev/null 2>&1 || true
  fi
}

if [ "$uninstall" = yes ]; then
  [ "$service" = no ] || stop_service
  if [ "$service" = yes ]; then
    rm -f "$unit" "$initscript"
    if has_systemd; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
  fi
  rm -f "$prefix/outpost" "$prefix/outpost.previous" "$prefix/outpost.failed"
  rmdir "$prefix" 2>/dev/null || true
  if [ -n "$bin_dir" ] && [ -L "$bin_dir/outpost" ]; then rm -f "$bin_dir/outpost"; fi
  rm -f "$config_dir/outpost.yaml"
  rmdir "$config_dir" 2>/dev/null || true
  say "removed outpost from $prefix and $config_dir; the data in $data_dir is kept (remove it by hand if you want)"
  exit 0
fi

if [ -z "$arch" ]; then
  case $(uname -m) in
    x86_64|amd64) arch=x64 ;;
    aarch64|arm64) arch=arm64 ;;
    ppc64le) arch=ppc64le ;;
    armv6l|armv7l|armhf) die "32-bit ARM is not supported: install a 64-bit OS (Raspberry Pi OS 64-bit) and run this again" ;;
    *) die "unsupported machine $(uname -m): outpost is built for x86_64, aarch64 and ppc64le" ;;
  esac
fi
case $arch in x64|arm64|ppc64le) ;; *) die "--arch must be x64, arm64 or ppc64le" ;; esac
case $transport in tcp|mqtt|nats) ;; *) die "--transport must be tcp, mqtt or nats" ;; esac
file=outpost-linux-$arch

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
  else die "neither sha256sum nor shasum is installed"
  fi
}

fetch() {
  if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 3 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" "$1"
  else die "neither curl nor wget is installed"
  fi
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/outpost-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

if [ -n "$url" ]; then
  say "downloading $url/SHA256SUMS and $file"
  fetch "$url/SHA256SUMS" "$tmp/SHA256SUMS" || die "cannot download $url/SHA256SUMS"
  fetch "$url/$file" "$tmp/$file" || die "cannot download $url/$file"
  sums=$tmp/SHA256SUMS
  src=$tmp/$file
elif [ -n "$binary" ]; then
  [ -f "$binary" ] || die "--binary $binary: no such file"
  [ -n "$sums" ] || sums=$(dirname "$binary")/SHA256SUMS
  [ -f "$sums" ] || die "no SHA256SUMS to verify $binary against (put it beside the binary or pass --sums FILE)"
  src=$binary
else
  usage >&2
  die "give --url BASE or --binary FILE"
fi

want=$(awk -v f="$file" '$2 == f || $2 == "*" f { print $1; exit }' "$sums")
[ -n "$want" ] || die "$sums has no line for $file"
got=$(sha256 "$src")
[ "$got" = "$want" ] || die "$file has SHA-256 $got, but SHA256SUMS says $want: refusing to install it"
say "verified $file ($got)"

# Install beside the old binary, then rename: a running agent keeps its file until it restarts.
mkdir -p "$prefix"
cp "$src" "$prefix/.outpost.new"
chmod 755 "$prefix/.outpost.new"
"$prefix/.outpost.new" version >/dev/null 2>&1 || { rm -f "$prefix/.outpost.new"; die "the binary does not run on this machine (glibc too old? see docs/operations.md)"; }
mv -f "$prefix/.outpost.new" "$prefix/outpost"
say "installed $("$prefix/outpost" version) as $prefix/outpost"
if [ -n "$bin_dir" ]; then
  mkdir -p "$bin_dir"
  ln -sf "$prefix/outpost" "$bin_dir/outpost"
fi

config=$config_dir/outpost.yaml
if [ -f "$config" ]; then
  say "keeping the existing $config"
else
  [ -n "$node_name" ] || node_name=$(hostname 2>/dev/null || uname -n)
  mkdir -p "$config_dir"
  umask 077
  {
    echo "# written by install.sh; see \`outpost config show\` for every key and its default"
    echo "node:"
    printf '  name: %s\n' "$(q "$node_name")"
    if [ -n "$central" ]; then printf '  central: %s\n' "$(q "$central")"; fi
    printf 'dataDir: %s\n' "$(q "$data_dir")"
    echo "transport:"
    echo "  kind: $transport"
    if [ -n "$servers" ]; then printf '  servers: [%s]\n' "$servers"; fi
    if [ -n "$token" ]; then printf '  token: %s\n' "$(q "$token")"; fi
  } >"$config.tmp"
  mv "$config.tmp" "$config"
  umask 022
  say "wrote $config (node $node_name${server:+, server $server})"
fi

if [ "$service" = no ]; then
  say "no service installed; run: $prefix/outpost agent --config $config"
  exit 0
fi

if has_systemd; then
  cat >"$unit" <<EOF
[Unit]
Description=outpost edge agent
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=$prefix/outpost agent --config $config
# outpost exits with 75 to restart into an upgraded binary; any other exit is restarted too.
Restart=always
RestartSec=2
Environment=OUTPOST_RESTART=exit
# glibc malloc: two arenas and large blocks mapped on their own, so memory a burst used goes
# back to the system (docs/performance.md, "Memory": ~15 MB less idle, ~30 MB less with 100k queued).
Environment=MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=262144 MALLOC_TRIM_THRESHOLD_=262144

[Install]
WantedBy=multi-user.target
EOF
  systemctl daemon-reload
  systemctl enable outpost.service >/dev/null 2>&1
  systemctl restart outpost.service
  say "systemd unit outpost.service installed and started (journalctl -u outpost -f)"
else
  cat >"$initscript" <<EOF
#!/bin/sh
# outpost edge agent (written by install.sh). A loop restarts it when it exits (upgrades exit 75).
### BEGIN INIT INFO
# Provides:          outpost
# Required-Start:    \$network \$remote_fs
# Required-Stop:     \$network \$remote_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: outpost edge agent
### END INIT INFO
pidfile=/run/outpost.pid
case "\$1" in
  start)
    [ -f "\$pidfile" ] && kill -0 "\$(cat "\$pidfile")" 2>/dev/null && exit 0
    OUTPOST_RESTART=exit MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=262144 MALLOC_TRIM_THRESHOLD_=262144 nohup sh -c 'while :; do $prefix/outpost agent --config $config; sleep 2; done' >>/var/log/outpost.log 2>&1 &
    echo \$! >"\$pidfile" ;;
  stop)
    # Freeze the restart loop first so it cannot start the agent again, then stop both.
    if [ -f "\$pidfile" ]; then pid=\$(cat "\$pidfile"); kill -STOP "\$pid" 2>/dev/null; pkill -P "\$pid" 2>/dev/null; kill "\$pid" 2>/dev/null; kill -CONT "\$pid" 2>/dev/null; rm -f "\$pidfile"; fi ;;
  restart) "\$0" stop; sleep 1; "\$0" start ;;
  *) echo "usage: \$0 start|stop|restart"; exit 2 ;;
esac
EOF
  chmod 755 "$initscript"
  if command -v update-rc.d >/dev/null 2>&1; then update-rc.d outpost defaults >/dev/null 2>&1 || true; fi
  "$initscript" restart
  say "init script $initscript installed and started (log: /var/log/outpost.log)"
fi
