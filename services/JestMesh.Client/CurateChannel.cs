using Grpc.Net.Client;
using JestMesh.Tls;

namespace JestMesh.Client;

/// <summary>Channels to the Selection service: plain HTTP/2 for http://, TLS (optionally with a client certificate) for https://.</summary>
public static class CurateChannel
{
    /// <summary>
    /// A channel to <paramref name="address"/> over <paramref name="handler"/>. For an https:// address,
    /// <paramref name="tls"/> decides the TLS: its CaFile is the CA Selection's certificate must chain
    /// to (else the system CAs), its CertificateFile and KeyFile the client certificate presented when
    /// Selection asks for one. A certificate the settings do not trust ends the call with
    /// <see cref="UntrustedPeerException"/> inside (<see cref="CurateSession"/> does not retry it), its
    /// message naming <paramref name="section"/>'s setting. TLS settings with an http:// address are an error.
    /// </summary>
    public static GrpcChannel Create(string address, SocketsHttpHandler handler, GrpcChannelOptions? options = null, TlsOptions? tls = null, string section = "Client")
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(handler);
        var uri = new Uri(address, UriKind.Absolute);
        if (tls is not null && (tls.HasCa || tls.HasCertificate))
        {
            if (uri.Scheme != Uri.UriSchemeHttps)
            {
                throw new ArgumentException($"{section}:{TlsOptions.SectionName} is set but the address '{address}' is not https://: TLS settings need an https:// address.", nameof(address));
            }
            tls.ConfigureClient(handler.SslOptions, section);
        }
        options ??= new GrpcChannelOptions();
        options.HttpHandler = handler;
        return GrpcChannel.ForAddress(uri, options);
    }
}
