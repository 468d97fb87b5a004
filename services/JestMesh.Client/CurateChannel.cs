using Grpc.Core;
using Grpc.Net.Client;
using Grpc.Net.Client.Balancer;
using Grpc.Net.Client.Configuration;
using JestMesh.Tls;

namespace JestMesh.Client;

/// <summary>Channels to the Selection service: plain HTTP/2 for http://, TLS (optionally with a client certificate) for https://.</summary>
public static class CurateChannel
{
    /// <summary>
    /// The addresses in a Selection address setting: one absolute http:// or https:// address, or
    /// several separated by commas (one per Selection replica), all with the same scheme. False, with
    /// <paramref name="error"/> naming the part that is wrong, for anything else.
    /// </summary>
    public static bool TryParseAddresses(string address, out IReadOnlyList<Uri> uris, out string error)
    {
        ArgumentNullException.ThrowIfNull(address);
        var parsed = new List<Uri>();
        uris = parsed;
        error = "";
        foreach (var part in address.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(part, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            {
                error = $"'{part}' in '{address}' is not an absolute http:// or https:// address.";
                return false;
            }
            if (uri.AbsolutePath != "/")
            {
                error = $"'{part}' in '{address}' has a path; give scheme://host:port.";
                return false;
            }
            parsed.Add(uri);
        }
        if (parsed.Select(u => u.Scheme).Distinct().Count() > 1)
        {
            error = $"'{address}' mixes http:// and https://: every Selection replica is reached the same way.";
            return false;
        }
        return true;
    }

    /// <summary>
    /// A channel to <paramref name="address"/> over <paramref name="handler"/>. Several addresses
    /// (comma-separated, one per Selection replica) make one channel that spreads calls round-robin
    /// over the replicas that answer: a Curate stream refused by a replica that does not serve the
    /// job (UNAVAILABLE) or lost with a killed replica is reopened by <see cref="CurateSession"/>,
    /// and its next call goes to the next replica. For https://, <paramref name="tls"/> decides the
    /// TLS: its CaFile is the CA Selection's certificate must chain to (else the system CAs), its
    /// CertificateFile and KeyFile the client certificate presented when Selection asks for one. A
    /// certificate the settings do not trust ends the call with <see cref="UntrustedPeerException"/>
    /// inside (<see cref="CurateSession"/> does not retry it), its message naming
    /// <paramref name="section"/>'s setting. TLS settings with an http:// address are an error.
    /// </summary>
    public static GrpcChannel Create(string address, SocketsHttpHandler handler, GrpcChannelOptions? options = null, TlsOptions? tls = null, string section = "Client")
    {
        ArgumentNullException.ThrowIfNull(handler);
        if (!TryParseAddresses(address, out var uris, out var error))
        {
            throw new ArgumentException(error, nameof(address));
        }
        var secure = uris[0].Scheme == Uri.UriSchemeHttps;
        if (tls is not null && (tls.HasCa || tls.HasCertificate))
        {
            if (!secure)
            {
                throw new ArgumentException($"{section}:{TlsOptions.SectionName} is set but the address '{address}' is not https://: TLS settings need an https:// address.", nameof(address));
            }
            tls.ConfigureClient(handler.SslOptions, section);
        }
        options ??= new GrpcChannelOptions();
        options.HttpHandler = handler;
        if (uris.Count == 1)
        {
            return GrpcChannel.ForAddress(uris[0], options);
        }
        var replicas = uris.Select(u => new BalancerAddress(u.Host, u.Port)).ToArray();
        options.ServiceProvider = new Resolvers(new StaticResolverFactory(_ => replicas));
        options.ServiceConfig = new ServiceConfig { LoadBalancingConfigs = { new RoundRobinConfig() } };
        options.Credentials = secure ? ChannelCredentials.SecureSsl : ChannelCredentials.Insecure;
        return GrpcChannel.ForAddress("static:///selection", options);
    }

    /// <summary>The one service a balanced channel asks its service provider for: the static resolver.</summary>
    private sealed class Resolvers(ResolverFactory factory) : IServiceProvider
    {
        private readonly ResolverFactory[] _factories = [factory];

        public object? GetService(Type serviceType) =>
            serviceType == typeof(IEnumerable<ResolverFactory>) ? _factories : null;
    }
}
