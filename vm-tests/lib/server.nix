# The appliance node: the module enabled with this node's test-VLAN address as its LAN address,
# the Mattermost image under test loaded from the store, and a UDP echo the TURN probes relay to.
# An image without TLS (the double) gets a TLS witness: openssl serving the city certificate, so
# the phone still proves that certificate verifies by the LAN IP.
{ image }:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  paths = (import ../../nixos/lib.nix).paths;
in
{
  services.cityd = {
    enable = true;
    settings = {
      lan.addresses = [ config.networking.primaryIPAddress ];
      mattermost.image = image.image;
    };
    mattermost.imageFile = image.imageFile;
  };

  # The assertions read iptables rules, so keep the iptables firewall backend explicit.
  networking.nftables.enable = false;

  # A peer for relayed data: answers every datagram with the same bytes. The relay reaches it on
  # this host's LAN address, which the city's peer policy allows.
  systemd.services.udp-echo = {
    wantedBy = [ "multi-user.target" ];
    serviceConfig = {
      ExecStart = "${pkgs.socat}/bin/socat UDP4-RECVFROM:40000,fork PIPE";
      DynamicUser = true;
    };
  };

  systemd.services.tls-witness = lib.mkIf (!image.servesTls) {
    wantedBy = [ "multi-user.target" ];
    requires = [ "cityd-pki.service" ];
    after = [ "cityd-pki.service" ];
    serviceConfig.ExecStart = lib.escapeShellArgs [
      "${pkgs.openssl}/bin/openssl"
      "s_server"
      "-quiet"
      "-www"
      "-accept"
      (toString image.tlsWitnessPort)
      "-cert"
      paths.serverCert
      "-key"
      paths.serverKey
    ];
  };
  networking.firewall.allowedTCPPorts = lib.mkIf (!image.servesTls) [ image.tlsWitnessPort ];

  environment.systemPackages = [
    config.services.cityd.package
    pkgs.iptables
    pkgs.iproute2
    pkgs.openssl
  ];

  virtualisation = {
    inherit (image) memorySize;
    diskSize = 8192;
    cores = 2;
  };
}
