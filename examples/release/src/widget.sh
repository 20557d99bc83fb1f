#!/bin/sh
# The whole product: prints its version.
echo "widget $(cat "$(dirname "$0")/../share/widget/VERSION")"
