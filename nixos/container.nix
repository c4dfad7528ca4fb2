# The Mattermost container via virtualisation.oci-containers, as `cityd up` runs it on a Docker
# host: pinned image, the env file cityd renders at run time, host directories owned by the image's
# UID, the certificate copied for that UID, ports on the LAN addresses and metrics on loopback only.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.cityd;
  cityLib = import ./lib.nix;
  spec = cityLib.container cfg;
  inherit (cityLib) paths;
  backend = config.virtualisation.oci-containers.backend;
  containerUnit = "${backend}-mattermost";
  order = builtins.filter (u: u.name == "${containerUnit}.service") (
    cityLib.units { inherit backend; }
  );
  after = (builtins.head order).after;
  uid = toString spec.uid;
in
{
  config = lib.mkIf cfg.enable {
    virtualisation.oci-containers.containers.mattermost = {
      inherit (spec)
        image
        ports
        volumes
        extraOptions
        ;
      inherit (cfg.mattermost) imageFile;
      # Strings, not paths: the file holds secrets and must never be copied into the store.
      environmentFiles = spec.environmentFiles;
    };

    systemd.tmpfiles.rules = map (dir: "d ${dir} 0750 ${uid} ${uid} -") spec.ownedDirs;

    systemd.services.${containerUnit} = {
      requires = after;
      inherit after;
      # The image runs as UID 2000 and cannot read the root-only PKI directory: hand it copies, and
      # a CA bundle with the city CA added so outgoing TLS to the lab's services verifies.
      preStart =
        let
          bin = "${pkgs.coreutils}/bin";
          certs = paths.mattermostDirs.certs;
        in
        ''
          ${bin}/install -d -m 0750 -o ${uid} -g ${uid} ${lib.escapeShellArgs spec.ownedDirs}
          ${bin}/install -m 0400 -o ${uid} -g ${uid} ${paths.serverCert} ${paths.serverKey} ${paths.caCert} ${certs}/
          ${bin}/cat ${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt ${paths.caCert} > ${certs}/ca-bundle.crt.new
          ${bin}/chmod 0444 ${certs}/ca-bundle.crt.new
          ${bin}/mv ${certs}/ca-bundle.crt.new ${certs}/ca-bundle.crt
        '';
      # Its input is the env file render writes from the render part of the city: a switch that
      # changes only channels, bots or webhooks leaves Mattermost (and the calls in it) running.
      restartTriggers = [ (cityLib.cityParts cfg).render ];
    };

    # cityd and the wiring reach Mattermost by its SiteURL name on this host.
    networking.hosts.${cityLib.primaryAddress cfg} = [ (cityLib.mattermostHost cfg) ];
  };
}
