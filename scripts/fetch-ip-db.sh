#!/usr/bin/env bash
# Fetches a freely licensed IP database from the npm registry into the directory where
# `censorprobe run` and `censorprobe control serve` find it without --asn-db:
# $XDG_DATA_HOME/censorprobe/ip-db, else ~/.local/share/censorprobe/ip-db (or DIR).
#
#   scripts/fetch-ip-db.sh [DIR]
#
# Two ip-location-db packages (docs/usage.md, "An IP database"):
#   @ip-location-db/asn                          IP ranges to AS numbers (CSV);
#                                                CC BY 4.0, RouteViews, DB-IP and NRO
#   @ip-location-db/geo-whois-asn-country-mmdb   IP ranges to countries (MMDB);
#                                                CC BY 4.0, NRO
# Their licence files are kept beside the tables: publishing results labelled with
# them means crediting those sources.
#
# With npm it uses `npm pack` (and npm's proxy and registry settings); without, curl
# against https://registry.npmjs.org. Re-run it to update: the tables are replaced
# only once both packages are fetched and unpacked.
set -euo pipefail

data="${XDG_DATA_HOME:-}"
[[ "$data" == /* ]] || data="${HOME:?neither XDG_DATA_HOME nor HOME is set}/.local/share"
dir="${1:-$data/censorprobe/ip-db}"
registry="${NPM_REGISTRY:-https://registry.npmjs.org}"
packages=(asn geo-whois-asn-country-mmdb)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for package in "${packages[@]}"; do
    if command -v npm >/dev/null 2>&1; then
        (cd "$work" && npm pack --silent "@ip-location-db/$package" >/dev/null)
    else
        # The newest version's tarball, as the registry's metadata names it.
        tarball="$(curl -fsSL "$registry/@ip-location-db/$package/latest" |
            grep -o '"tarball": *"[^"]*"' | head -n1 | cut -d'"' -f4)"
        [[ -n "$tarball" ]] || {
            echo "fetch-ip-db: the registry named no tarball for @ip-location-db/$package" >&2
            exit 1
        }
        curl -fsSL -o "$work/ip-location-db-$package.tgz" "$tarball"
    fi
done

mkdir -p "$work/ip-db"
for archive in "$work"/ip-location-db-*.tgz; do
    # The tables with addresses written out (not the *-num.csv copies), the combined
    # country file (not the per-family ones), and the licences.
    tar -xzf "$archive" -C "$work/ip-db" --strip-components=1 \
        --exclude='*-num.csv' --exclude='*-ipv4.mmdb' --exclude='*-ipv6.mmdb' \
        --exclude=package.json --exclude=README.md --exclude=MODIFICATIONS
done
for table in asn-ipv4.csv asn-ipv6.csv geo-whois-asn-country.mmdb; do
    [[ -s "$work/ip-db/$table" ]] || {
        echo "fetch-ip-db: $table is missing from the packages" >&2
        exit 1
    }
done

mkdir -p "$dir"
for file in "$work"/ip-db/*; do
    cp "$file" "$dir/.$(basename "$file").new"
done
for file in "$work"/ip-db/*; do
    mv -f "$dir/.$(basename "$file").new" "$dir/$(basename "$file")"
done
echo "IP database in $dir:"
ls -l "$dir"
