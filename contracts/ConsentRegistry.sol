// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

import {IConsentRegistry} from "../interfaces/IConsentRegistry.sol";

/// @title ConsentRegistry
/// @notice Patients grant, update and revoke access to their imaging studies: directly, through a
/// delegate (guardian), or by an EIP-712 signature that anyone may relay.
/// @dev Every change emits an event, so the full history can be rebuilt from logs alone.
contract ConsentRegistry is IConsentRegistry, EIP712, Nonces {
    /// @notice The scope meaning "all of the patient's studies".
    bytes32 public constant ALL_STUDIES = bytes32(0);

    /// @notice The purpose bits a grant may set; any other bit is reserved and rejected.
    /// @dev Bits 0..6: TREAT, ETREAT, HRESCH, PATRQT, HPAYMT, HOPERAT, PUBHLTH.
    uint32 public constant KNOWN_PURPOSES = (1 << 7) - 1;

    // The EIP-712 type strings are fixed by the signed format (the Python client signs the same
    // types) and are hashed at compile time, so their length costs no gas at run time.
    /* solhint-disable gas-small-strings */

    /// @notice EIP-712 type hash of the `Grant` message that `grantBySig` accepts.
    bytes32 public constant GRANT_TYPEHASH = keccak256(
        "Grant(address patient,address grantee,bytes32 scope,uint32 purposes,bool identified,"
        "uint48 notBefore,uint48 expiresAt,uint256 nonce,uint256 deadline)"
    );

    /// @notice EIP-712 type hash of the `Revoke` message that `revokeBySig` accepts.
    bytes32 public constant REVOKE_TYPEHASH =
        keccak256("Revoke(address patient,address grantee,bytes32 scope,uint256 nonce,uint256 deadline)");

    /* solhint-enable gas-small-strings */

    mapping(bytes32 grantId => Grant) private _grants;
    mapping(address patient => mapping(address delegate => bool)) private _delegates;

    modifier onlyDelegate(address patient) {
        if (!_delegates[patient][msg.sender]) revert ConsentRegistryNotDelegate(patient, msg.sender);
        _;
    }

    /// @notice Deploys the registry under the EIP-712 domain ("ConsentRegistry", "1").
    constructor() EIP712("ConsentRegistry", "1") {}

    /// @inheritdoc IConsentRegistry
    function grant(
        address grantee,
        bytes32 scope,
        uint32 purposes,
        bool identified,
        uint48 notBefore,
        uint48 expiresAt
    ) external {
        _grant(msg.sender, grantee, scope, Grant(purposes, identified, notBefore, expiresAt));
    }

    /// @inheritdoc IConsentRegistry
    function revoke(address grantee, bytes32 scope) external {
        _revoke(msg.sender, grantee, scope);
    }

    /// @inheritdoc IConsentRegistry
    function setDelegate(address delegate, bool allowed) external {
        if (delegate == address(0) || delegate == msg.sender) revert ConsentRegistryInvalidDelegate(delegate);
        _delegates[msg.sender][delegate] = allowed;
        emit DelegateSet(msg.sender, delegate, allowed);
    }

    /// @inheritdoc IConsentRegistry
    function grantFor(
        address patient,
        address grantee,
        bytes32 scope,
        uint32 purposes,
        bool identified,
        uint48 notBefore,
        uint48 expiresAt
    ) external onlyDelegate(patient) {
        _grant(patient, grantee, scope, Grant(purposes, identified, notBefore, expiresAt));
    }

    /// @inheritdoc IConsentRegistry
    function revokeFor(address patient, address grantee, bytes32 scope) external onlyDelegate(patient) {
        _revoke(patient, grantee, scope);
    }

    /// @inheritdoc IConsentRegistry
    function grantBySig(
        address patient,
        address grantee,
        bytes32 scope,
        uint32 purposes,
        bool identified,
        uint48 notBefore,
        uint48 expiresAt,
        uint256 deadline,
        bytes calldata signature
    ) external {
        if (block.timestamp > deadline) revert ConsentRegistryExpiredSignature(deadline);
        Grant memory g = Grant(purposes, identified, notBefore, expiresAt);
        _checkSignature(patient, _useNonceAndHashGrant(patient, grantee, scope, g, deadline), signature);
        _grant(patient, grantee, scope, g);
    }

    /// @inheritdoc IConsentRegistry
    function revokeBySig(
        address patient,
        address grantee,
        bytes32 scope,
        uint256 deadline,
        bytes calldata signature
    ) external {
        if (block.timestamp > deadline) revert ConsentRegistryExpiredSignature(deadline);
        _checkSignature(patient, _useNonceAndHashRevoke(patient, grantee, scope, deadline), signature);
        _revoke(patient, grantee, scope);
    }

    /// @inheritdoc IConsentRegistry
    function isPermitted(address patient, address grantee, bytes32 studyKey, uint8 purpose)
        external
        view
        returns (bool permitted, bool identified)
    {
        if (purpose >= 32) return (false, false);
        uint32 bit = uint32(1) << purpose;
        (permitted, identified) = _permits(_grants[_grantId(patient, grantee, studyKey)], bit);
        if (identified || studyKey == ALL_STUDIES) return (permitted, identified);
        (bool allPermitted, bool allIdentified) = _permits(_grants[_grantId(patient, grantee, ALL_STUDIES)], bit);
        return (permitted || allPermitted, identified || allIdentified);
    }

    /// @inheritdoc IConsentRegistry
    function getGrant(address patient, address grantee, bytes32 scope) external view returns (Grant memory) {
        return _grants[_grantId(patient, grantee, scope)];
    }

    /// @inheritdoc IConsentRegistry
    function isDelegate(address patient, address delegate) external view returns (bool) {
        return _delegates[patient][delegate];
    }

    /// @inheritdoc IConsentRegistry
    function nonces(address patient) public view override(IConsentRegistry, Nonces) returns (uint256) {
        return super.nonces(patient);
    }

    function _grant(address patient, address grantee, bytes32 scope, Grant memory g) internal {
        if (grantee == address(0)) revert ConsentRegistryZeroGrantee();
        if (g.purposes == 0 || g.purposes & ~KNOWN_PURPOSES != 0) revert ConsentRegistryInvalidPurposes(g.purposes);
        if (g.expiresAt != 0 && (g.expiresAt <= g.notBefore || g.expiresAt <= block.timestamp)) {
            revert ConsentRegistryInvalidWindow(g.notBefore, g.expiresAt);
        }
        _grants[_grantId(patient, grantee, scope)] = g;
        emit ConsentGranted(patient, grantee, scope, g.purposes, g.identified, g.notBefore, g.expiresAt);
    }

    function _revoke(address patient, address grantee, bytes32 scope) internal {
        bytes32 id = _grantId(patient, grantee, scope);
        if (_grants[id].purposes == 0) revert ConsentRegistryGrantNotFound(patient, grantee, scope);
        delete _grants[id];
        emit ConsentRevoked(patient, grantee, scope);
    }

    /// @dev Accepts a 65-byte ECDSA signature by `patient` (OpenZeppelin `ECDSA.tryRecover`: low-s
    /// only, v 27 or 28), otherwise asks `patient` as an EIP-1271 wallet (OpenZeppelin
    /// `SignatureChecker.isValidERC1271SignatureNow`). Trying ECDSA first skips the cold
    /// EXTCODESIZE (2,600 gas) of `SignatureChecker.isValidSignatureNow` on the common EOA path.
    /// No contract address has a known private key, so this accepts exactly what the code-size
    /// dispatch accepts. Reading r, s and v from calldata in assembly instead of letting
    /// `tryRecover` copy the signature to memory saved only 261 gas, so it is not done.
    function _checkSignature(address patient, bytes32 structHash, bytes calldata signature) internal view {
        bytes32 digest = _hashTypedDataV4(structHash);
        if (signature.length == 65) {
            (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
            if (err == ECDSA.RecoverError.NoError && recovered == patient) return;
        }
        if (!SignatureChecker.isValidERC1271SignatureNow(patient, digest, signature)) {
            revert ConsentRegistryInvalidSigner(patient);
        }
    }

    /// @dev Consumes the patient's current nonce and returns the EIP-712 struct hash of the `Grant`
    /// message that carries it. A message signed over any other nonce then fails the signature
    /// check, so a signature is accepted at most once. Kept apart from `grantBySig` to stay within
    /// the stack.
    function _useNonceAndHashGrant(
        address patient,
        address grantee,
        bytes32 scope,
        Grant memory g,
        uint256 deadline
    ) internal returns (bytes32) {
        return keccak256(
            abi.encode(
                GRANT_TYPEHASH,
                patient,
                grantee,
                scope,
                g.purposes,
                g.identified,
                g.notBefore,
                g.expiresAt,
                _useNonce(patient),
                deadline
            )
        );
    }

    /// @dev As `_useNonceAndHashGrant`, for the `Revoke` message.
    function _useNonceAndHashRevoke(address patient, address grantee, bytes32 scope, uint256 deadline)
        internal
        returns (bytes32)
    {
        return keccak256(abi.encode(REVOKE_TYPEHASH, patient, grantee, scope, _useNonce(patient), deadline));
    }

    function _permits(Grant storage g, uint32 bit) internal view returns (bool permitted, bool identified) {
        Grant memory m = g;
        permitted = m.purposes & bit != 0 && block.timestamp >= m.notBefore
            && (m.expiresAt == 0 || block.timestamp < m.expiresAt);
        identified = permitted && m.identified;
    }

    function _grantId(address patient, address grantee, bytes32 scope) internal pure returns (bytes32) {
        return keccak256(abi.encode(patient, grantee, scope));
    }
}
