using RabbitMQ.Client;

namespace JestMesh.Messaging;

/// <summary>
/// Messaging:Uri read once for every client: one AMQP URI, or the URIs of a cluster's nodes separated
/// by commas (amqp://u:p@node1:5672/,amqp://u:p@node2:5672/). The nodes share scheme, credentials and
/// virtual host (taken from the first); a connection goes to any node that answers and recovers to
/// any node after the one it used is lost.
/// </summary>
public sealed class BrokerAddress
{
    private BrokerAddress(Uri primary, IReadOnlyList<AmqpTcpEndpoint> endpoints)
    {
        Primary = primary;
        Endpoints = endpoints;
    }

    /// <summary>The first URI: scheme, credentials and virtual host for every node.</summary>
    public Uri Primary { get; }

    /// <summary>Every node, in the order given (the client tries them in a random order).</summary>
    public IReadOnlyList<AmqpTcpEndpoint> Endpoints { get; }

    /// <summary>Reads <paramref name="value"/> or says what is wrong with it (without credentials).</summary>
    public static bool TryParse(string value, out BrokerAddress address, out string error)
    {
        address = null!;
        var parts = (value ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0)
        {
            error = "is empty: give an amqp:// or amqps:// URI, or several separated by commas.";
            return false;
        }
        var uris = new List<Uri>(parts.Length);
        for (var i = 0; i < parts.Length; i++)
        {
            if (!Uri.TryCreate(parts[i], UriKind.Absolute, out var uri) || (uri.Scheme != "amqp" && uri.Scheme != "amqps"))
            {
                error = parts.Length == 1
                    ? "must be an absolute amqp:// or amqps:// URI."
                    : $"entry {i + 1} of {parts.Length} must be an absolute amqp:// or amqps:// URI.";
                return false;
            }
            uris.Add(uri);
        }
        var first = uris[0];
        for (var i = 1; i < uris.Count; i++)
        {
            if (uris[i].Scheme != first.Scheme || uris[i].UserInfo != first.UserInfo || uris[i].AbsolutePath != first.AbsolutePath)
            {
                error = $"entry {i + 1} of {uris.Count} differs from the first in scheme, credentials or virtual host: the nodes of one cluster share them.";
                return false;
            }
        }
        // An endpoint built from a URI alone does not take TLS from amqps://: say it per endpoint,
        // with the host name the server certificate must carry.
        address = new BrokerAddress(first, uris.Select(u => new AmqpTcpEndpoint(u, new SslOption(u.Host, enabled: u.Scheme == "amqps"))).ToArray());
        error = "";
        return true;
    }

    /// <summary>Reads <paramref name="value"/>; <see cref="FormatException"/> naming the problem otherwise.</summary>
    public static BrokerAddress Parse(string value) =>
        TryParse(value, out var address, out var error) ? address : throw new FormatException($"Messaging:Uri {error}");
}
