# The real Mattermost Enterprise image, pinned by digest for the VM tests. The digest and the
# archive hash can only be computed on a networked machine:
#
#   nix run nixpkgs#nix-prefetch-docker -- --image-name mattermost/mattermost-enterprise-edition --image-tag 11.8.5
#
# prints `imageDigest` and `hash` (or `sha256`, which is the same value in another encoding; use
# `hash` in SRI form); paste them below. Until then, building a test that uses this image stops at
# evaluation with that instruction, and a malformed value stops with what is wrong: nothing is
# fetched unpinned and no fake hash is ever tried.
{ pkgs }:
let
  pin = {
    imageName = "mattermost/mattermost-enterprise-edition";
    finalImageTag = "11.8.5";
    imageDigest = "PLACEHOLDER-run-nix-prefetch-docker";
    hash = "PLACEHOLDER-run-nix-prefetch-docker";
  };
  prefetch = "nix run nixpkgs#nix-prefetch-docker -- --image-name ${pin.imageName} --image-tag ${pin.finalImageTag}";
  problems =
    (
      if builtins.match "sha256:[0-9a-f]{64}" pin.imageDigest == null then
        [ "imageDigest is \"${pin.imageDigest}\", not sha256:<64 hex digits> (the manifest digest)" ]
      else
        [ ]
    )
    ++ (
      if builtins.match "sha256-[A-Za-z0-9+/]{43}=" pin.hash == null then
        [ "hash is \"${pin.hash}\", not an SRI sha256-<44 base64 characters> (the archive's hash)" ]
      else
        [ ]
    );
in
{
  # Fully qualified on both sides, so podman finds the loaded image instead of resolving a short name.
  image = "docker.io/${pin.imageName}:${pin.finalImageTag}";
  imageFile =
    if problems != [ ] then
      throw ''
        vm-tests/images/mattermost-enterprise.nix: the Enterprise image is not pinned:
          ${builtins.concatStringsSep "\n  " problems}
        On a networked machine run
          ${prefetch}
        and copy its imageDigest and hash (SRI) into that file.''
    else
      pkgs.dockerTools.pullImage {
        inherit (pin)
          imageName
          imageDigest
          hash
          finalImageTag
          ;
        finalImageName = "docker.io/${pin.imageName}";
        arch = "amd64";
      };
  # PostgreSQL, the real server and its plugins need more room than the double.
  memorySize = 4096;
  # The real server serves TLS with the city certificate on its own port.
  servesTls = true;
  tlsWitnessPort = null;
}
