# A phone on the LAN: cityd for the same checks a person would make, curl and openssl as
# independent witnesses, and the server's city file (no secret in it) to point cityd at.
{
  nodes,
  pkgs,
  ...
}:
{
  environment.systemPackages = [
    nodes.server.services.cityd.package
    pkgs.curl
    pkgs.openssl
    pkgs.netcat
  ];
  environment.etc."cityd/city.json".source = nodes.server.services.cityd.cityFile;
}
