using Microsoft.Extensions.DependencyInjection;

namespace JestMesh.Messaging;

/// <summary>DI registration of the broker connections, the confirmed publisher and consumers.</summary>
public static class MessagingServiceCollectionExtensions
{
    /// <summary>
    /// Registers one <see cref="BrokerConnections"/> and one <see cref="ConfirmedPublisher"/> per
    /// service, and a fresh <see cref="AckingConsumer"/> per resolution. Bind and validate
    /// <see cref="MessagingOptions"/> separately (the host's options validation does it at start).
    /// </summary>
    public static IServiceCollection AddJestMeshMessaging(this IServiceCollection services)
    {
        services.AddSingleton<BrokerConnections>();
        services.AddSingleton<ConfirmedPublisher>();
        services.AddTransient<AckingConsumer>();
        return services;
    }
}
