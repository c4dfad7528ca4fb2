# An example lab host: the flake's `nixosConfigurations.example` (evaluated by `nix flake check`,
# and against stub NixOS options by scripts/nix-check.sh). Copy it into your own configuration and
# replace the LAN address, the disk and the boot device with your host's.
{
  services.cityd = {
    enable = true;
    settings = {
      # This host's LAN IP, literally: it goes into the certificate and the TURN peer policy.
      lan.addresses = [ "192.168.1.20" ];
      domain = "cicd.local";
      # Everything else cityd's city accepts passes through as written, e.g. another channel:
      # channels = [ { name = "builds"; display_name = "Builds"; } ];
    };
    # Open the city's ports on this interface only.
    firewallInterface = "enp3s0";
  };

  # What every NixOS host has; yours come from its hardware-configuration.nix.
  networking.hostName = "lab";
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  boot.loader.grub.devices = [ "/dev/sda" ];
  system.stateVersion = "26.05";
}
