#!/usr/bin/env bash
# Wrap the application folder made by installers/build_bundle.py into an AppImage.
#
#   installers/linux/build_appimage.sh [--appdir-only] [BUNDLE_DIR] [OUT_DIR]
#
# BUNDLE_DIR defaults to dist/vaura-studio, OUT_DIR to dist. Needs appimagetool on PATH (or
# APPIMAGETOOL=/path/to/appimagetool); --appdir-only stops after assembling the AppDir.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
appdir_only=0
if [ "${1:-}" = "--appdir-only" ]; then appdir_only=1; shift; fi
bundle=${1:-$root/dist/vaura-studio}
out=${2:-$root/dist}

if [ ! -x "$bundle/vaura-studio" ]; then
    echo "build_appimage: no application folder at $bundle (missing vaura-studio); run 'make bundle' first" >&2
    exit 1
fi

appdir="$out/VAURA_Studio.AppDir"
rm -rf "$appdir"
mkdir -p "$appdir/usr/lib" "$appdir/usr/share/applications" "$appdir/usr/share/icons/hicolor/512x512/apps"
# Hard links where the file system allows: the bundle is several GB and stays untouched.
cp -al "$bundle" "$appdir/usr/lib/vaura-studio" 2>/dev/null || cp -a "$bundle" "$appdir/usr/lib/vaura-studio"
install -m 755 "$here/AppRun" "$appdir/AppRun"
install -m 644 "$here/vaura-studio.desktop" "$appdir/vaura-studio.desktop"
install -m 644 "$here/vaura-studio.desktop" "$appdir/usr/share/applications/vaura-studio.desktop"
install -m 644 "$root/resources/icons/vaura-studio.png" "$appdir/vaura-studio.png"
install -m 644 "$root/resources/icons/vaura-studio.png" "$appdir/usr/share/icons/hicolor/512x512/apps/vaura-studio.png"
ln -s vaura-studio.png "$appdir/.DirIcon"
echo "AppDir: $appdir"
if [ "$appdir_only" = 1 ]; then exit 0; fi

tool=${APPIMAGETOOL:-$(command -v appimagetool || true)}
if [ -z "$tool" ]; then
    echo "build_appimage: appimagetool not found; get it from https://github.com/AppImage/appimagetool/releases" >&2
    echo "and put it on PATH or set APPIMAGETOOL. The AppDir above is complete." >&2
    exit 2
fi
arch=$(uname -m)
image="$out/VAURA_Studio-$arch.AppImage"
ARCH="$arch" "$tool" --no-appstream "$appdir" "$image"
echo "AppImage: $image ($(du -h "$image" | cut -f1))"
