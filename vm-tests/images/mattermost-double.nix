# The Mattermost double (testcontainers/, the stand-in for the products we cannot run here) as an
# OCI archive for podman/docker load: the same paths, UID and environment contract as the real
# image, so the module runs it unchanged. Nothing is fetched: the binary comes from this workspace.
{ pkgs, src }:
let
  # The workspace crate and binary of the double.
  crate = "cityd-testcontainers";
  bin = "mattermost-double";
  uid = "2000";

  double = pkgs.rustPlatform.buildRustPackage {
    pname = "cityd-mattermost-double";
    version = "0";
    inherit src;
    cargoLock.lockFile = ../../Cargo.lock;
    cargoBuildFlags = [
      "--package"
      crate
      "--bin"
      bin
    ];
    doCheck = false;
    meta.mainProgram = bin;
  };
in
pkgs.dockerTools.buildLayeredImage {
  name = "localhost/cityd-mattermost-double";
  tag = "vm";
  contents = [ pkgs.cacert ];
  # The directories the real image declares, owned by its UID (the host bind-mounts over them).
  fakeRootCommands = ''
    mkdir -p mattermost/config mattermost/data mattermost/logs mattermost/plugins \
      mattermost/client/plugins mattermost/run mattermost/certs tmp
    chown -R ${uid}:${uid} mattermost
    chmod 1777 tmp
  '';
  enableFakechroot = false;
  config = {
    Entrypoint = [ (pkgs.lib.getExe double) ];
    User = "${uid}:${uid}";
    WorkingDir = "/mattermost";
    ExposedPorts = {
      "8065/tcp" = { };
      "8067/tcp" = { };
    };
  };
}
