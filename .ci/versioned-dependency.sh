#!/usr/bin/env bash
# Proves the package works as a versioned dependency: a throwaway package depends on a local clone
# of this repository by version tag (from: "x.y.z", file URL), builds, and calls into CNN.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone -q "$root" "$work/swift-cnn"
# Commit any uncommitted tree state so the check covers what is being tested.
git -C "$work/swift-cnn" -c user.email=ci@example.com -c user.name=ci tag -f 0.1.0 >/dev/null
mkdir -p "$work/app/Sources/App"
cat > "$work/app/Package.swift" <<SWIFT
// swift-tools-version: 6.2
import PackageDescription
let package = Package(
    name: "App",
    dependencies: [.package(url: "file://$work/swift-cnn", from: "0.1.0")],
    targets: [.executableTarget(name: "App", dependencies: [.product(name: "CNN", package: "swift-cnn")])]
)
SWIFT
cat > "$work/app/Sources/App/main.swift" <<'SWIFT'
import CNN
let conv = try Conv2d(inputChannels: 3, outputChannels: 8, kernelSize: 3, padding: 1)
let y = try conv(try Tensor(ones: [1, 3, 8, 8]))
print("versioned dependency OK: output \(y.shape), ISA \(ComputeRuntime.activeISA), OpenMP \(ComputeRuntime.isOpenMPEnabled)")
SWIFT
cd "$work/app"
swift run App 2>&1 | tail -2
