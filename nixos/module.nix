# The cityd appliance as one NixOS module: `services.cityd.enable = true` and the LAN address bring
# up PostgreSQL 17, coturn, the Mattermost container, the firewall and cityd's units.
{
  imports = [
    ./options.nix
    ./city-file.nix
    ./units.nix
    ./postgresql.nix
    ./coturn.nix
    ./container.nix
    ./firewall.nix
    ./lan-follow.nix
    ./backup.nix
  ];
}
