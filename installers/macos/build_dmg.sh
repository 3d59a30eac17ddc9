#!/usr/bin/env bash
# Wrap "dist/VAURA Studio.app" (made by installers/build_bundle.py on macOS) into a compressed .dmg
# with a link to /Applications, so users install by dragging.
#
#   installers/macos/build_dmg.sh [APP] [OUT_DMG]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
app=${1:-"$root/dist/VAURA Studio.app"}
dmg=${2:-"$root/dist/VAURA-Studio-$(uname -m).dmg"}

if [ "$(uname -s)" != Darwin ]; then
    echo "build_dmg: hdiutil exists only on macOS" >&2
    exit 1
fi
if [ ! -d "$app" ]; then
    echo "build_dmg: no app at $app; run 'python installers/build_bundle.py' on this Mac first" >&2
    exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -R "$app" "$stage/"
ln -s /Applications "$stage/Applications"
cp "$root/LICENSE" "$stage/LICENSE.txt"
rm -f "$dmg"
hdiutil create -volname "VAURA Studio" -srcfolder "$stage" -fs HFS+ -format UDZO -ov "$dmg"
echo "dmg: $dmg ($(du -h "$dmg" | cut -f1))"
# Unsigned builds: Gatekeeper asks on first start (right click > Open). To sign and notarise, run
# codesign --deep --options runtime -s "Developer ID Application: ..." on the .app before this
# script, then xcrun notarytool submit "$dmg" --wait && xcrun stapler staple "$dmg".
