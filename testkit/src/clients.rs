//! SDK clients set up as the server's fault tests need them.

use confab_sdk::{Client, ConnectOptions};
use confab_sdk::{RoomId, Visibility};

/// `n` (> 0) users, `user0` … `user{n-1}`, each registered through its
/// own client connected to `url` with `options`, all members of one
/// public room, "load", which the first creates.
pub async fn users_in_a_room(
    url: &str,
    options: &ConnectOptions,
    n: usize,
) -> (Vec<Client>, RoomId) {
    let mut clients = Vec::with_capacity(n);
    let mut room = None;
    for i in 0..n {
        let client = Client::connect(url, options.clone())
            .await
            .expect("connect");
        client
            .register(&format!("user{i}"), "password123")
            .await
            .expect("register");
        let id = match room {
            None => {
                client
                    .create_room("load", "", Visibility::Public)
                    .await
                    .expect("create room")
                    .id
            }
            Some(id) => {
                client.join_room(id).await.expect("join");
                id
            }
        };
        room = Some(id);
        clients.push(client);
    }
    (clients, room.expect("n > 0"))
}
