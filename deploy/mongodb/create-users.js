// Run once by the mongo image on the first start of an empty data volume (mounted into
// /docker-entrypoint-initdb.d/), as the root user, before the replica set is initiated.
// The passwords come from the container's environment (docker-compose.yml, from .env).
//
//   yingji         the services: readWrite on each service's database and the platform's,
//                  clusterMonitor for the readiness check of the replica set.
//   yingji-backup  the backup job: the built-in `backup` role (reads every database and the
//                  oplog, which `mongodump --oplog` needs; it can write nothing).
//
// Restores run as root (`mongorestore --oplogReplay` needs more than the `restore` role).
const admin = db.getSiblingDB("admin");
const databases = ["intake", "warning", "dispatch", "reporting", "platform"].map(
  (name) => `yingji_${name}`,
);

admin.createUser({
  user: "yingji",
  pwd: process.env.MONGODB_YINGJI_PASSWORD,
  roles: [
    ...databases.map((name) => ({ role: "readWrite", db: name })),
    { role: "clusterMonitor", db: "admin" },
  ],
});

admin.createUser({
  user: "yingji-backup",
  pwd: process.env.MONGODB_BACKUP_PASSWORD,
  roles: [{ role: "backup", db: "admin" }],
});
