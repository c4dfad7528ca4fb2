# The real Mattermost Enterprise image, pinned by digest for the VM tests. The digest and the
# archive hash can only be computed on a networked machine:
#
#   nix-prefetch-docker --image-name mattermost/mattermost-enterprise-edition --image-tag 11.8.5
#
# prints `imageDigest` and `hash` (or `sha256`); paste them below. Until then, building a test that
# uses this image stops at evaluation with this message instead of fetching anything unpinned.
{ pkgs }:
let
  pin = {
    imageName = "mattermost/mattermost-enterprise-edition";
    finalImageTag = "11.8.5";
    imageDigest = "PLACEHOLDER-run-nix-prefetch-docker";
    hash = "PLACEHOLDER-run-nix-prefetch-docker";
  };
  unpinned = pkgs.lib.hasPrefix "PLACEHOLDER" pin.imageDigest || pkgs.lib.hasPrefix "PLACEHOLDER" pin.hash;
in
{
  # Fully qualified on both sides, so podman finds the loaded image instead of resolving a short name.
  image = "docker.io/${pin.imageName}:${pin.finalImageTag}";
  imageFile =
    if unpinned then
      throw "vm-tests/images/mattermost-enterprise.nix: the Enterprise image is not pinned yet; run `nix-prefetch-docker --image-name ${pin.imageName} --image-tag ${pin.finalImageTag}` on a networked machine and fill in imageDigest and hash"
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
}
