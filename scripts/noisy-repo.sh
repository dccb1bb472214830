# Sourced by the bench-* scripts: `noisy_repo DIR LINES` makes DIR/repo (pushed to
# DIR/remote.git), an environment with two builds: `noisy`, whose command prints LINES lines
# of 79 digits and a newline (`bash noisy.sh`), and `quiet`, which prints nothing.
noisy_repo() {
  local work=$1 lines=$2 repo=$1/repo
  git init -q -b main "$repo"
  git init -q --bare "$work/remote.git"
  mkdir -p "$repo/.flox/env"
  printf '%s\n' "awk -v n=$lines 'BEGIN { for (i = 0; i < n; i++) printf \"%079d\\n\", i }'" >"$repo/noisy.sh"
  printf '.flox/cache/\n' >"$repo/.gitignore"
  cat >"$repo/.flox/env/manifest.toml" <<EOF
version = 1

[build.noisy]
version = "1.0"
command = '''
bash noisy.sh
mkdir -p \$out && echo done > \$out/result
'''

[build.quiet]
version = "1.0"
command = 'mkdir -p \$out && echo done > \$out/result'
EOF
  git -C "$repo" add -A
  git -C "$repo" -c user.name=bench -c user.email=bench@example.invalid commit -qm bench
  git -C "$repo" remote add origin "$work/remote.git"
  git -C "$repo" push -q -u origin main
}
