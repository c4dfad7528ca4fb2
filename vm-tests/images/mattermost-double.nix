# The Mattermost double (testcontainers/, the stand-in for the products we cannot run here) as an
# OCI archive for podman/docker load, built like testcontainers/images/mattermost-double: the real
# image's UID and directories, so the module runs it unchanged. Nothing is fetched: the binary
# comes from this workspace.
#
# The double is not the real server: it reads no MM_* environment (the env file cityd renders is
# passed and ignored), takes its listeners as arguments (`--listen`, `--socket`), and speaks plain
# HTTP on its TCP port. The VM tests know this through `servesTls = false` (vm-tests/default.nix).
{ pkgs, src }:
let
  cityLib = import ../../nixos/lib.nix;
  # The workspace crate and binary of the double.
  crate = "cityd-testcontainers";
  bin = "mattermost-double";
  uid = toString cityLib.containerPaths.uid;
  # Where the module mounts the host's socket directory (the default city's local_socket_dir),
  # which is where `cityd wire` looks for the socket on the host side.
  socket = "${cityLib.defaults.mattermost.localSocketDir}/${cityLib.containerPaths.localSocketName}";

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
    # Without a listener the double exits at once ("nothing to serve").
    Cmd = [
      "--listen"
      "0.0.0.0:${toString cityLib.defaults.mattermost.port}"
      "--socket"
      socket
    ];
    User = "${uid}:${uid}";
    WorkingDir = "/mattermost";
    ExposedPorts = {
      "8065/tcp" = { };
      "8067/tcp" = { };
    };
  };
}
